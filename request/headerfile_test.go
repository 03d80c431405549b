package request

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReadValue(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"Bearer abc\n", "Bearer abc", ""},
		{"  Bearer abc  \r\n", "Bearer abc", ""},
		{"", "", "empty"},
		{"a\nb\n", "", "more than one line"},
		{"a\x01b", "", "control character"},
		{strings.Repeat("x", MaxHeaderValue+5), "", "longer than"},
	} {
		v, err := ReadValue("Authorization", strings.NewReader(tc.in))
		if tc.err == "" && (err != nil || v != tc.want) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: %q %v", tc.in, v, err)
		}
		if err != nil && strings.Contains(err.Error(), "abc") {
			t.Errorf("an error shows the value: %v", err)
		}
	}
	if _, err := ParseHeaderFile("Authorization"); err == nil {
		t.Error("no =FILE accepted")
	}
	if h, err := ParseHeaderFile("X-Key=/run/key"); err != nil || h.Name != "X-Key" || h.Path != "/run/key" {
		t.Errorf("%+v %v", h, err)
	}
}

func TestWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	os.WriteFile(path, []byte("Bearer one\n"), 0o600)
	h := HeaderFile{Name: "Authorization", Path: path}
	v, err := h.Read()
	if err != nil || v != "Bearer one" {
		t.Fatalf("%q %v", v, err)
	}
	var mu sync.Mutex
	var got []string
	var bad []error
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Watch(ctx, []HeaderFile{h}, map[string]string{"Authorization": v}, 10*time.Millisecond,
			func(n, v string) { mu.Lock(); got = append(got, v); mu.Unlock() },
			func(err error) { mu.Lock(); bad = append(bad, err); mu.Unlock() })
		close(done)
	}()
	wait := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			k := len(got)
			mu.Unlock()
			if k >= n {
				return
			}
		}
		t.Fatalf("no change %d seen", n)
	}
	time.Sleep(50 * time.Millisecond)
	os.WriteFile(path, []byte("Bearer two\n"), 0o600)
	wait(1)
	os.WriteFile(path, []byte(""), 0o600) // mid-rotation: skipped
	time.Sleep(50 * time.Millisecond)
	os.WriteFile(path, []byte("Bearer three"), 0o600)
	wait(2)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	// The empty file was skipped (and said, without the value); a read
	// that caught a write half done may have been skipped too.
	if strings.Join(got, ",") != "Bearer two,Bearer three" || len(bad) < 1 {
		t.Fatalf("changes %q, errors %v", got, bad)
	}
	for _, err := range bad {
		if strings.Contains(err.Error(), "Bearer") {
			t.Fatalf("an error shows the value: %v", err)
		}
	}
}
