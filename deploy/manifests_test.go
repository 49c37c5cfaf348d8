package deploy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// document is one YAML document of one file under deploy/.
type document struct {
	file string // relative to deploy/
	node yaml.Node
}

// object is what every Kubernetes resource has.
type object struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type objectMeta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

// The structs below declare only the fields the checks read.

type deployment struct {
	object `yaml:",inline"`
	Spec   struct {
		Replicas *int          `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int64          `yaml:"terminationGracePeriodSeconds"`
	RestartPolicy                 string          `yaml:"restartPolicy"`
	SecurityContext               securityContext `yaml:"securityContext"`
	Containers                    []container     `yaml:"containers"`
	Volumes                       []volume        `yaml:"volumes"`
}

// volume is a pod volume; only Secret volumes are read.
type volume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
		Optional   *bool  `yaml:"optional"`
		Items      []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"secret"`
}

// job is a batch/v1 Job.
type job struct {
	object `yaml:",inline"`
	Spec   struct {
		BackoffLimit          *int `yaml:"backoffLimit"`
		ActiveDeadlineSeconds *int `yaml:"activeDeadlineSeconds"`
		Template              struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// securityContext merges the pod's and the container's fields; a container
// value overrides the pod's.
type securityContext struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	Privileged               *bool `yaml:"privileged"`
	Capabilities             *struct {
		Drop []string `yaml:"drop"`
		Add  []string `yaml:"add"`
	} `yaml:"capabilities"`
	SeccompProfile *struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom any    `yaml:"valueFrom"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	EnvFrom []struct {
		ConfigMapRef *envSource `yaml:"configMapRef"`
		SecretRef    *envSource `yaml:"secretRef"`
	} `yaml:"envFrom"`
	StartupProbe   *probe `yaml:"startupProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop *handler `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext securityContext `yaml:"securityContext"`
}

// handler is a lifecycle hook: a sleep action or a command.
type handler struct {
	Sleep *struct {
		Seconds int64 `yaml:"seconds"`
	} `yaml:"sleep"`
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
}

type envSource struct {
	Name     string `yaml:"name"`
	Optional *bool  `yaml:"optional"`
}

type probe struct {
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
	} `yaml:"httpGet"`
}

type configMap struct {
	object `yaml:",inline"`
	Data   map[string]yaml.Node `yaml:"data"`
}

type secret struct {
	object     `yaml:",inline"`
	Data       map[string]string    `yaml:"data"`
	StringData map[string]yaml.Node `yaml:"stringData"`
}

type service struct {
	object `yaml:",inline"`
	Spec   struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Port       int       `yaml:"port"`
			TargetPort yaml.Node `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type podDisruptionBudget struct {
	object `yaml:",inline"`
	Spec   struct {
		MinAvailable   yaml.Node     `yaml:"minAvailable"`
		MaxUnavailable yaml.Node     `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type horizontalPodAutoscaler struct {
	object `yaml:",inline"`
	Spec   struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas *int `yaml:"minReplicas"`
		MaxReplicas int  `yaml:"maxReplicas"`
		Metrics     []struct {
			Type     string `yaml:"type"`
			Resource *struct {
				Name   string `yaml:"name"`
				Target struct {
					Type               string `yaml:"type"`
					AverageUtilization *int   `yaml:"averageUtilization"`
				} `yaml:"target"`
			} `yaml:"resource"`
		} `yaml:"metrics"`
	} `yaml:"spec"`
}

type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Resources  []string `yaml:"resources"`
	Images     []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
		Digest  string `yaml:"digest"`
	} `yaml:"images"`
}

// composeFile is the part of the Compose specification the checks read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Environment yaml.Node `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Ports           []string  `yaml:"ports"`
	StopGracePeriod string    `yaml:"stop_grace_period"`
	Entrypoint      yaml.Node `yaml:"entrypoint"`
	Command         yaml.Node `yaml:"command"`
	Healthcheck     *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// loadDocuments reads every YAML document under dir. A file that does not
// parse fails the test.
func loadDocuments(t *testing.T, dir string) []document {
	t.Helper()
	var docs []document
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isYAML(path) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		fileDocs, err := parseYAMLFile(path)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		for _, n := range fileDocs {
			docs = append(docs, document{file: filepath.ToSlash(rel), node: n})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return docs
}

func isYAML(path string) bool {
	ext := filepath.Ext(path)
	return ext == ".yaml" || ext == ".yml"
}

// parseYAMLFile decodes every document of a multi-document file, skipping
// empty ones (a leading "---" or a comment-only document).
func parseYAMLFile(path string) ([]yaml.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var out []yaml.Node
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(n.Content) == 0 || n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null" {
			continue
		}
		if n.Content[0].Kind != yaml.MappingNode {
			return nil, fmt.Errorf("document %d: want a mapping at the top level", i)
		}
		out = append(out, n)
	}
	return out, nil
}

// manifests indexes the Kubernetes objects of deploy/k8s by kind and name.
type manifests struct {
	objects map[string]map[string]document // kind -> name -> document
}

func indexManifests(t *testing.T, docs []document) manifests {
	t.Helper()
	m := manifests{objects: map[string]map[string]document{}}
	for _, d := range docs {
		if !strings.HasPrefix(d.file, "k8s/") {
			continue
		}
		var o object
		if err := d.node.Decode(&o); err != nil {
			t.Errorf("%s: %v", d.file, err)
			continue
		}
		if o.Kind == "" || o.APIVersion == "" {
			t.Errorf("%s: a document without apiVersion or kind", d.file)
			continue
		}
		name := o.Metadata.Name
		if o.Kind == "Kustomization" {
			name = d.file
		}
		if m.objects[o.Kind] == nil {
			m.objects[o.Kind] = map[string]document{}
		}
		if prev, dup := m.objects[o.Kind][name]; dup {
			t.Errorf("%s %q is defined twice (%s and %s)", o.Kind, name, prev.file, d.file)
		}
		m.objects[o.Kind][name] = d
	}
	return m
}

// one decodes the only object of a kind into out and returns its document.
func (m manifests) one(t *testing.T, kind string, out any) document {
	t.Helper()
	objs := m.objects[kind]
	if len(objs) != 1 {
		t.Fatalf("want exactly one %s under deploy/k8s, found %d", kind, len(objs))
	}
	var d document
	for _, d = range objs {
	}
	if err := d.node.Decode(out); err != nil {
		t.Fatalf("%s: decode %s: %v", d.file, kind, err)
	}
	return d
}

// scalarStrings decodes a mapping of scalars, reporting non-string values
// (Kubernetes rejects a number or a bool in ConfigMap data).
func scalarStrings(values map[string]yaml.Node) (map[string]string, []string) {
	out := make(map[string]string, len(values))
	var notStrings []string
	for k, n := range values {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			notStrings = append(notStrings, k)
		}
		out[k] = n.Value
	}
	slices.Sort(notStrings)
	return out, notStrings
}

// composeEnvironment reads a service's environment in either of Compose's
// forms (mapping, or a list of NAME=VALUE). A nil value means "passed
// through from the host", which the stack must not depend on.
func composeEnvironment(n yaml.Node) (map[string]*string, error) {
	env := map[string]*string{}
	switch n.Kind {
	case 0:
		return env, nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s: want a scalar value", k.Value)
			}
			if v.Tag == "!!null" {
				env[k.Value] = nil
				continue
			}
			value := v.Value
			env[k.Value] = &value
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			name, value, ok := strings.Cut(item.Value, "=")
			if !ok {
				env[name] = nil
				continue
			}
			env[name] = &value
		}
	default:
		return nil, fmt.Errorf("environment: want a mapping or a list")
	}
	return env, nil
}

// commandText joins an entrypoint/command given as a string or a list.
func commandText(nodes ...yaml.Node) string {
	var parts []string
	for _, n := range nodes {
		switch n.Kind {
		case yaml.ScalarNode:
			parts = append(parts, n.Value)
		case yaml.SequenceNode:
			for _, c := range n.Content {
				parts = append(parts, c.Value)
			}
		}
	}
	return strings.Join(parts, " ")
}

// preStopPause is how long the preStop hook delays SIGTERM.
func preStopPause(c container) (time.Duration, error) {
	pre := c.Lifecycle.PreStop
	switch {
	case pre == nil:
		return 0, nil
	case pre.Sleep != nil:
		return time.Duration(pre.Sleep.Seconds) * time.Second, nil
	case pre.Exec != nil && len(pre.Exec.Command) == 2 && filepath.Base(pre.Exec.Command[0]) == "sleep":
		n, err := strconv.Atoi(pre.Exec.Command[1])
		if err != nil {
			return 0, fmt.Errorf("preStop sleep %q: %w", pre.Exec.Command[1], err)
		}
		return time.Duration(n) * time.Second, nil
	}
	return 0, fmt.Errorf("preStop hook of an unknown length")
}

// effective merges a pod's security context with a container's.
func effective(pod, c securityContext) securityContext {
	out := pod
	if c.RunAsNonRoot != nil {
		out.RunAsNonRoot = c.RunAsNonRoot
	}
	if c.SeccompProfile != nil {
		out.SeccompProfile = c.SeccompProfile
	}
	out.ReadOnlyRootFilesystem = c.ReadOnlyRootFilesystem
	out.AllowPrivilegeEscalation = c.AllowPrivilegeEscalation
	out.Privileged = c.Privileged
	out.Capabilities = c.Capabilities
	return out
}

// selects reports whether every label of selector is on labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// portRef resolves a probe's or a Service's port (a number or a named
// container port) to a container port number, or 0.
func portRef(n yaml.Node, c container) int {
	if n.Kind != yaml.ScalarNode {
		return 0
	}
	if n.Tag == "!!int" {
		p, _ := strconv.Atoi(n.Value)
		for _, cp := range c.Ports {
			if cp.ContainerPort == p {
				return p
			}
		}
		return 0
	}
	for _, cp := range c.Ports {
		if cp.Name == n.Value {
			return cp.ContainerPort
		}
	}
	return 0
}
