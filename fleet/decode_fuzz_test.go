package fleet

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/barrage-load/barrage/proto"
)

// seeds are real encodings of every znode type.
func seeds(f *testing.F) {
	p := proto.Plan{TargetURL: "http://127.0.0.1:8080/", Rate: 1000, Headers: map[string]string{"X": "y"}}
	p.Normalize()
	segs := p.Schedule()
	asg := Assignment{Test: "t1", Epoch: 1, Version: 1, Plan: p, Interval: time.Second, Schedule: segs,
		Budget: proto.Budget{Schedule: segs, Weight: 1}}
	st := TestState{ID: "t1", Plan: p, Agents: []AgentRef{{ID: "agent-0000000001", Name: "a", Host: "h", Cores: 2}},
		Interval: time.Second, Phase: PhaseRunning, Version: 1, Epoch: 1, Leader: "c-0000000001", MinAgents: 1, Schedule: segs,
		Lost: []LostAgent{{Agent: "agent-0000000001", Name: "a", At: 1.5}}}
	for _, v := range []any{
		AgentInfo{Name: "a", Host: "h", Cores: 2, MaxRate: 1e6, MaxConnections: 100},
		CoordInfo{Name: "c", Host: "h", PID: 1},
		asg, st,
		Activation{Version: 2, Epoch: 1, At: time.Second},
		LiveConfig{Rate: 10, Connections: 2},
		Ack{Version: 1, Error: "x"},
		AgentResult{Agent: "agent-0000000001", Name: "a", Sent: 5},
		StopInfo{Reason: "r"},
		int64(12345),
	} {
		b, _ := json.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte(`{"rate": 1e400}`))
	f.Add([]byte(`{"test": "` + string(make([]byte, 100)) + `"}`))
	f.Add([]byte{})
}

// FuzzDecoders: no znode content panics a decoder, and what a decoder
// accepts satisfies its own checks.
func FuzzDecoders(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := DecodeAgentInfo(b); err == nil {
			if CheckName("agent name", a.Name) != nil || a.Cores < 1 {
				t.Fatalf("accepted registration %+v", a)
			}
		}
		_, _ = DecodeCoordInfo(b)
		if a, err := DecodeAssignment(b); err == nil {
			if CheckTestID(a.Test) != nil || a.Plan.Validate() != nil || a.Budget.Validate(&a.Plan, proto.Caps{}) != nil {
				t.Fatalf("accepted assignment %+v", a)
			}
		}
		if st, err := DecodeTestState(b); err == nil {
			for _, ag := range st.Agents {
				if CheckAgentID(ag.ID) != nil {
					t.Fatalf("accepted agent %q", ag.ID)
				}
			}
		}
		_, _ = DecodeActivation(b)
		if c, err := DecodeLiveConfig(b); err == nil && !(c.Rate >= 0 && c.Rate <= proto.MaxRate) {
			t.Fatalf("accepted rate %g", c.Rate)
		}
		_, _ = DecodeAck(b)
		_, _ = DecodeAgentResult(b)
		_ = DecodeStopInfo(b)
		_, _ = DecodeBarrier(b)
		_, _, _ = ParseSnapName(string(b))
	})
}

// FuzzSnapName: a name ParseSnapName accepts is one SnapName makes.
func FuzzSnapName(f *testing.F) {
	f.Add("agent-0000000001-000012")
	f.Add("agent-1-2")
	f.Fuzz(func(t *testing.T, name string) {
		agent, seq, ok := ParseSnapName(name)
		if ok && (seq < 0 || CheckAgentID(agent) != nil) {
			t.Fatalf("%q -> %q %d", name, agent, seq)
		}
	})
}

func TestDecodersRefuse(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func([]byte) error
		b    string
	}{
		{"too big", func(b []byte) error { _, err := DecodeAck(b); return err }, `{"version":1,"error":"` + string(make([]byte, MaxNode)) + `"}`},
		{"NaN-ish rate", func(b []byte) error { _, err := DecodeLiveConfig(b); return err }, `{"rate":-1,"connections":2}`},
		{"huge rate", func(b []byte) error { _, err := DecodeLiveConfig(b); return err }, `{"rate":1e12,"connections":2}`},
		{"no connections", func(b []byte) error { _, err := DecodeLiveConfig(b); return err }, `{"rate":1,"connections":2000000}`},
		{"bad agent name", func(b []byte) error { _, err := DecodeAgentInfo(b); return err }, `{"name":"a\nb","host":"h","cores":1}`},
		{"bad test id", func(b []byte) error { _, err := DecodeAssignment(b); return err }, `{"test":"../x","epoch":1,"version":1}`},
		{"negative budget rate", func(b []byte) error { _, err := DecodeAssignment(b); return err },
			`{"test":"t1","epoch":1,"version":1,"interval":1000000000,"plan":{"target_url":"http://h/","method":"GET","duration":"1s","connections":1,"pipeline":1,"timeout":"1s","connect_timeout":"1s","pattern":{"type":"constant"},"rate":300},"budget":{"weight":1,"schedule":[{"start":0,"duration":1000000000,"from":-300,"to":-300,"connections":1}]},"schedule":[{"start":0,"duration":1000000000,"from":300,"to":300,"connections":1}]}`},
		{"trailing data", func(b []byte) error { _, err := DecodeAck(b); return err }, `{"version":1} {}`},
	} {
		if err := tc.fn([]byte(tc.b)); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
