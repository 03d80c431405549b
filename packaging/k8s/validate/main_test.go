package main

import (
	"os"
	"strings"
	"testing"
)

// The shipped manifests pass; each way of breaking them is caught.
func TestManifests(t *testing.T) {
	var docs []doc
	for _, f := range []string{"../secret.yaml", "../agent.yaml", "../coordinator.yaml"} {
		ds, err := load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		docs = append(docs, ds...)
	}
	if errs := Check(docs); len(errs) > 0 {
		t.Fatalf("the shipped manifests fail: %v", errs)
	}
	secret, _ := os.ReadFile("../secret.yaml")
	agent, _ := os.ReadFile("../agent.yaml")
	job, _ := os.ReadFile("../coordinator.yaml")
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"unknown field", "agent", "      terminationGracePeriodSeconds: 15", "      terminationGracePeriod: 15", "unknown field"},
		{"misspelt probe field", "agent", "            periodSeconds: 2", "            periodSecond: 2", "unknown field"},
		{"wrong type", "agent", "  replicas: 3", "  replicas: three", "replicas"},
		{"duplicate field", "agent", "  replicas: 3", "  replicas: 3\n  replicas: 4", "already set"},
		{"selector mismatch", "agent", "      app.kubernetes.io/component: agent\n  strategy", "      app.kubernetes.io/component: agnet\n  strategy", "does not match"},
		{"probe on an undeclared port", "agent", "              path: /readyz\n              port: metrics", "              path: /readyz\n              port: metrix", "does not declare"},
		{"secret key missing", "agent", "                  key: zk", "                  key: zookeeper", "do not define"},
		{"volume not there", "agent", "            - name: state\n              mountPath", "            - name: stat\n              mountPath", "does not have"},
		{"restart policy of a Job", "job", "      restartPolicy: Never", "      restartPolicy: Always", "restartPolicy"},
		{"bad label value", "agent", "    app.kubernetes.io/component: agent\nspec", "    app.kubernetes.io/component: agent!\nspec", "label"},
		{"secret on the command line", "agent", "            - /etc/barrage/zk-auth", "            - barrage:CHANGE-ME", "command line"},
		{"no image", "job", "          image: registry.example.com/barrage:latest", "          image: \"\"", "no image"},
	} {
		src := map[string][]byte{"agent": agent, "job": job}[tc.file]
		if !strings.Contains(string(src), tc.old) {
			t.Fatalf("%s: the manifest has no %q", tc.name, tc.old)
		}
		broken := strings.Replace(string(src), tc.old, tc.new, 1)
		ds, err := decodeAll(tc.name, []byte(broken))
		var msg string
		if err != nil {
			msg = err.Error()
		} else {
			sec, _ := decodeAll("secret", secret)
			other := map[string][]byte{"agent": job, "job": agent}[tc.file]
			od, _ := decodeAll("other", other)
			for _, e := range Check(append(append(sec, od...), ds...)) {
				msg += e.Error() + "\n"
			}
		}
		if msg == "" || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: got %q, want an error with %q", tc.name, msg, tc.want)
		}
	}
}
