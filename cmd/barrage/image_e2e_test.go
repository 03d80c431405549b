package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestContainerImage builds the image FROM scratch with podman from a
// static binary, as `make image` does, checks what it runs as, and runs it
// against the built-in target. A sandbox that may not start containers
// (crun's setrlimit refused, as on this project's CI machines) is said in
// the log: the build and the image's configuration are still checked.
func TestContainerImage(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Fatalf("podman is not installed: run scripts/install-deps.sh podman (as root)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// The build context: dist/ and packaging/ as make dist leaves them.
	ctx := t.TempDir()
	dist := filepath.Join(ctx, "dist")
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dist, "barrage"), "./cmd/barrage")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		ca = nil // the image then verifies no https target; not this test's concern
	}
	if err := os.WriteFile(filepath.Join(dist, "ca-certificates.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(root, "packaging"), filepath.Join(ctx, "packaging")).CombinedOutput(); err != nil {
		t.Fatalf("copy packaging: %v\n%s", err, out)
	}
	tag := fmt.Sprintf("localhost/barrage-e2e:%d", os.Getpid())
	run := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, podman, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := run(3*time.Minute, "build", "-q", "-f", "packaging/Containerfile", "-t", tag, ctx); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = run(time.Minute, "rmi", "-f", tag) })
	out, err := run(time.Minute, "image", "inspect", tag)
	if err != nil {
		t.Fatalf("podman image inspect: %v\n%s", err, out)
	}
	var img []struct {
		Config struct {
			User       string
			Entrypoint []string
			WorkingDir string
		}
		Size int64
	}
	if err := json.Unmarshal([]byte(out), &img); err != nil || len(img) != 1 {
		t.Fatalf("image inspect: %v\n%s", err, out)
	}
	c := img[0].Config
	if c.User != "65534:65534" || len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/barrage" || c.WorkingDir != "/var/lib/barrage" {
		t.Fatalf("image config: %+v", c)
	}
	t.Logf("image %s: %.1f MB, user %s, entrypoint %v", tag, float64(img[0].Size)/1e6, c.User, c.Entrypoint)

	url := startTarget(t)
	out, err = run(time.Minute, "run", "--rm", "--network", "host", tag, "run", "-q", "-r", "200", "-d", "1s", "-c", "4", url)
	if err != nil && strings.Contains(out, "setrlimit") && strings.Contains(out, "Operation not permitted") {
		t.Logf("podman cannot start containers in this sandbox (the image was built and checked): %s", strings.TrimSpace(out))
		return
	}
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Requests    200 sent: 200 answered") || !strings.Contains(out, "Verdict     valid") {
		t.Fatalf("podman run: not the report of 200 answered requests:\n%s", out)
	}
}
