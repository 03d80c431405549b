// Command validate checks barrage's Kubernetes manifests offline: each
// document is decoded STRICTLY into the k8s.io/api type its apiVersion
// and kind name (an unknown or misspelt field, a wrong type or a
// duplicate field fails), then checked for what a schema cannot say:
// names and labels valid, the selector matching the pod template, every
// container with a name, an image and resources, probes on declared
// ports, env from Secrets that the manifests define, and volumes mounted
// that exist. It needs no cluster and no network (schemas cannot be
// fetched here): the types are the schema, from the Go module proxy.
//
//	go run . ../*.yaml
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate FILE.yaml...")
		os.Exit(2)
	}
	var docs []doc
	bad := 0
	for _, path := range os.Args[1:] {
		ds, err := load(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			bad++
			continue
		}
		docs = append(docs, ds...)
	}
	for _, err := range Check(docs) {
		fmt.Fprintln(os.Stderr, err)
		bad++
	}
	if bad > 0 {
		os.Exit(1)
	}
	fmt.Printf("validate: %d objects in %d files: ok\n", len(docs), len(os.Args)-1)
}

// doc is one decoded object and where it came from.
type doc struct {
	where string
	obj   runtime.Object
}

// strict decodes the kinds the manifests use, refusing unknown and
// duplicate fields.
var strict = func() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

// load decodes every document of a YAML file strictly.
func load(path string) ([]doc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeAll(path, b)
}

func decodeAll(path string, b []byte) ([]doc, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []doc
	for i := 1; ; i++ {
		chunk, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(chunk))) == 0 {
			continue
		}
		obj, gvk, err := strict.Decode(chunk, nil, nil)
		where := fmt.Sprintf("%s#%d", path, i)
		if err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		if gvk.Group == "" && gvk.Version == "" {
			return nil, fmt.Errorf("document %d: no apiVersion", i)
		}
		out = append(out, doc{where: where + " " + gvk.Kind, obj: obj})
	}
	if len(out) == 0 {
		return nil, errors.New("no objects")
	}
	return out, nil
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// Check applies the rules a schema cannot express, across documents.
func Check(docs []doc) []error {
	var errs []error
	fail := func(where, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
	}
	secrets := map[string]map[string]bool{}
	configMaps := map[string]bool{}
	for _, d := range docs {
		switch o := d.obj.(type) {
		case *corev1.Secret:
			keys := map[string]bool{}
			for k := range o.StringData {
				keys[k] = true
			}
			for k := range o.Data {
				keys[k] = true
			}
			secrets[o.Name] = keys
		case *corev1.ConfigMap:
			configMaps[o.Name] = true
		}
	}
	for _, d := range docs {
		meta, ok := d.obj.(metav1.Object)
		if !ok {
			fail(d.where, "not an object with metadata")
			continue
		}
		for _, m := range validation.IsDNS1123Subdomain(meta.GetName()) {
			fail(d.where, "name %q: %s", meta.GetName(), m)
		}
		checkLabels(d.where, meta.GetLabels(), fail)
		switch o := d.obj.(type) {
		case *appsv1.Deployment:
			if o.Spec.Selector == nil {
				fail(d.where, "no selector")
				break
			}
			sel, err := metav1.LabelSelectorAsSelector(o.Spec.Selector)
			if err != nil || sel.Empty() {
				fail(d.where, "bad or empty selector: %v", err)
			} else if !sel.Matches(labels.Set(o.Spec.Template.Labels)) {
				fail(d.where, "the selector does not match the pod template's labels")
			}
			if o.Spec.Replicas != nil && *o.Spec.Replicas < 1 {
				fail(d.where, "replicas < 1")
			}
			checkPod(d.where, &o.Spec.Template, secrets, configMaps, fail)
		case *batchv1.Job:
			if rp := o.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
				fail(d.where, "a Job's pods need restartPolicy Never or OnFailure, not %q", rp)
			}
			checkPod(d.where, &o.Spec.Template, secrets, configMaps, fail)
		case *corev1.Secret, *corev1.ConfigMap:
		default:
			fail(d.where, "unexpected kind %T", o)
		}
	}
	return errs
}

func checkLabels(where string, l map[string]string, fail func(string, string, ...any)) {
	for k, v := range l {
		for _, m := range validation.IsQualifiedName(k) {
			fail(where, "label key %q: %s", k, m)
		}
		for _, m := range validation.IsValidLabelValue(v) {
			fail(where, "label %s value %q: %s", k, v, m)
		}
	}
}

func checkPod(where string, t *corev1.PodTemplateSpec, secrets map[string]map[string]bool, configMaps map[string]bool, fail func(string, string, ...any)) {
	checkLabels(where+" template", t.Labels, fail)
	spec := &t.Spec
	vols := map[string]bool{}
	for _, v := range spec.Volumes {
		if vols[v.Name] {
			fail(where, "volume %q twice", v.Name)
		}
		vols[v.Name] = true
		if s := v.Secret; s != nil {
			keys, ok := secrets[s.SecretName]
			if !ok {
				fail(where, "volume %q: no Secret %q in the manifests", v.Name, s.SecretName)
			}
			for _, it := range s.Items {
				if !keys[it.Key] {
					fail(where, "volume %q: Secret %q has no key %q", v.Name, s.SecretName, it.Key)
				}
			}
		}
		if c := v.ConfigMap; c != nil && !configMaps[c.Name] {
			fail(where, "volume %q: no ConfigMap %q in the manifests", v.Name, c.Name)
		}
	}
	if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == "" {
				fail(where, "anti-affinity term without a topologyKey")
			}
			sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
			if err != nil || !sel.Matches(labels.Set(t.Labels)) {
				fail(where, "anti-affinity does not select the pods it spreads: %v", err)
			}
		}
	}
	if len(spec.Containers) == 0 {
		fail(where, "no containers")
	}
	for _, c := range spec.Containers {
		cw := where + " container " + c.Name
		for _, m := range validation.IsDNS1123Label(c.Name) {
			fail(cw, "name: %s", m)
		}
		if c.Image == "" {
			fail(cw, "no image")
		}
		if len(c.Resources.Requests) == 0 {
			fail(cw, "no resource requests")
		}
		ports := map[string]int32{}
		for _, p := range c.Ports {
			if p.ContainerPort < 1 || p.ContainerPort > 65535 {
				fail(cw, "port %d", p.ContainerPort)
			}
			if p.Name != "" {
				for _, m := range validation.IsValidPortName(p.Name) {
					fail(cw, "port name %q: %s", p.Name, m)
				}
				ports[p.Name] = p.ContainerPort
			}
		}
		for name, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			if pr == nil || pr.HTTPGet == nil {
				continue
			}
			if p := pr.HTTPGet.Port; p.StrVal != "" {
				if _, ok := ports[p.StrVal]; !ok {
					fail(cw, "%s probe on port %q, which the container does not declare", name, p.StrVal)
				}
			}
			if !strings.HasPrefix(pr.HTTPGet.Path, "/") {
				fail(cw, "%s probe path %q", name, pr.HTTPGet.Path)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				r := e.ValueFrom.SecretKeyRef
				if keys, ok := secrets[r.Name]; !ok || !keys[r.Key] {
					fail(cw, "env %s from Secret %q key %q, which the manifests do not define", e.Name, r.Name, r.Key)
				}
			}
		}
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] {
				fail(cw, "mounts volume %q, which the pod does not have", m.Name)
			}
		}
		// barrage never takes secrets on its command line.
		for _, a := range c.Args {
			if strings.Contains(a, "CHANGE-ME") || strings.Contains(strings.ToLower(a), "password") {
				fail(cw, "a secret on the command line: %q", a)
			}
		}
	}
}
