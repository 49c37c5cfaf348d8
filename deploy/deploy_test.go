package deploy

import (
	"context"
	"encoding/base64"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/marketplace/usersvc/adapters/cli"
	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/staticgeo"
)

// The service is called usersvc in the Compose file and in every
// Kubernetes object's name.
const serviceName = "usersvc"

// Paths the issue requires, relative to deploy/.
var requiredFiles = []string{
	"compose.yaml",
	"k8s/kustomization.yaml",
	"k8s/deployment.yaml",
	"k8s/service.yaml",
	"k8s/configmap.yaml",
	"k8s/secret.example.yaml",
	"k8s/pdb.yaml",
	"k8s/hpa.yaml",
}

func TestYAMLDocumentsParse(t *testing.T) {
	docs := loadDocuments(t, ".") // fails the test on any parse error
	perFile := map[string]int{}
	for _, d := range docs {
		perFile[d.file]++
	}
	for _, file := range requiredFiles {
		t.Run(file, func(t *testing.T) {
			if perFile[file] == 0 {
				t.Errorf("deploy/%s is missing or holds no YAML document", file)
			}
		})
	}
}

// Compose --------------------------------------------------------------

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	docs, err := parseYAMLFile("compose.yaml")
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if len(docs) != 1 {
		t.Fatalf("compose.yaml: want one document, got %d", len(docs))
	}
	var c composeFile
	if err := docs[0].Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

func mustService(t *testing.T, c composeFile, name string) composeService {
	t.Helper()
	s, ok := c.Services[name]
	if !ok {
		t.Fatalf("compose.yaml has no service %q", name)
	}
	return s
}

func composeEnv(t *testing.T, s composeService) map[string]*string {
	t.Helper()
	env, err := composeEnvironment(s.Environment)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return env
}

// lookupIn serves cli.Load from a fixed set of variables.
func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestComposeServiceEnvironmentIsKnownToTheBinary(t *testing.T) {
	c := loadCompose(t)
	env := composeEnv(t, mustService(t, c, serviceName))
	if len(env) == 0 {
		t.Fatal("the usersvc service sets no environment")
	}
	values := map[string]string{}
	for _, name := range sortedKeys(env) {
		t.Run(name, func(t *testing.T) {
			if !cli.KnownVariable(name) {
				t.Errorf("%s is not read by the binary (adapters/cli Variables)", name)
			}
			if env[name] == nil {
				t.Errorf("%s has no value: Compose would pass the host's value through", name)
			}
		})
		if env[name] != nil {
			values[name] = *env[name]
		}
	}

	cfg, err := cli.Load(lookupIn(values))
	if err != nil {
		t.Fatalf("the binary refuses the Compose environment: %v", err)
	}
	kafka := composeEnv(t, mustService(t, c, "kafka"))
	inNetwork := advertisedListenerOn(t, kafka, "kafka")

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"DATABASE_URL names the mysql service", func(t *testing.T) {
			target, err := gormstore.ParseURL(cfg.DatabaseURL)
			if err != nil {
				t.Fatal(err)
			}
			if target.Dialect != gormstore.DialectMySQL || target.MySQL.Addr != "mysql:3306" {
				t.Errorf("DATABASE_URL is %s at %v, want mysql at mysql:3306", target.Dialect, target.MySQL)
			}
		}},
		{"KAFKA_BROKERS is the broker's in-network listener", func(t *testing.T) {
			if cfg.KafkaBrokers != inNetwork {
				t.Errorf("KAFKA_BROKERS = %q, want %q", cfg.KafkaBrokers, inNetwork)
			}
		}},
		{"GEO_PROVIDER is static", func(t *testing.T) {
			if cfg.GeoProvider != "static" {
				t.Errorf("GEO_PROVIDER = %q", cfg.GeoProvider)
			}
		}},
		{"TRUSTED_PROXIES is set and empty", func(t *testing.T) {
			if v, ok := values["TRUSTED_PROXIES"]; !ok || v != "" || len(cfg.TrustedProxies) != 0 {
				t.Errorf("TRUSTED_PROXIES = %q (set: %v)", v, ok)
			}
		}},
		{"LOG_FORMAT is json", func(t *testing.T) {
			if cfg.LogFormat != "json" {
				t.Errorf("LOG_FORMAT = %q", cfg.LogFormat)
			}
		}},
		{"a laptop and the compose network may create users", func(t *testing.T) {
			geo, err := staticgeo.Parse(cfg.GeoStatic)
			if err != nil {
				t.Fatal(err)
			}
			addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
			for _, name := range sortedKeys(c.Networks) {
				for _, ipam := range c.Networks[name].IPAM.Config {
					p, err := netip.ParsePrefix(ipam.Subnet)
					if err != nil {
						t.Fatalf("network %s: %v", name, err)
					}
					addrs = append(addrs, p.Addr().Next()) // the gateway published ports arrive from
				}
			}
			if len(addrs) == 2 {
				t.Fatal("compose.yaml fixes no network subnet, so GEO_STATIC cannot name it")
			}
			for _, a := range addrs {
				loc, err := geo.Locate(context.Background(), a)
				if err != nil {
					t.Fatal(err)
				}
				if err := cfg.GeoAllowed.Check(loc); err != nil {
					t.Errorf("%s: %v", a, err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// listeners parses Kafka's NAME://host:port lists.
func listeners(v string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(v, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(l), "://")
		if ok {
			out[name] = addr
		}
	}
	return out
}

func envValue(env map[string]*string, name string) string {
	if v := env[name]; v != nil {
		return *v
	}
	return ""
}

// advertisedListenerOn returns the advertised host:port whose host is host.
func advertisedListenerOn(t *testing.T, kafkaEnv map[string]*string, host string) string {
	t.Helper()
	for _, addr := range listeners(envValue(kafkaEnv, "KAFKA_ADVERTISED_LISTENERS")) {
		if h, _, ok := strings.Cut(addr, ":"); ok && h == host {
			return addr
		}
	}
	t.Fatalf("kafka advertises no listener on %q", host)
	return ""
}

func TestComposeStack(t *testing.T) {
	c := loadCompose(t)
	svc := mustService(t, c, serviceName)
	svcEnv := composeEnv(t, svc)
	kafka := mustService(t, c, "kafka")
	kafkaEnv := composeEnv(t, kafka)

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"mysql is 8.4 with a healthcheck", func(t *testing.T) {
			m := mustService(t, c, "mysql")
			if m.Image != "mysql:8.4" {
				t.Errorf("image %q", m.Image)
			}
			if m.Healthcheck == nil || len(m.Healthcheck.Test) == 0 {
				t.Error("no healthcheck")
			}
		}},
		{"kafka is a single-node KRaft broker and controller", func(t *testing.T) {
			if kafka.Image != "apache/kafka:3.9.0" {
				t.Errorf("image %q", kafka.Image)
			}
			roles := strings.Split(envValue(kafkaEnv, "KAFKA_PROCESS_ROLES"), ",")
			if !slices.Contains(roles, "broker") || !slices.Contains(roles, "controller") {
				t.Errorf("KAFKA_PROCESS_ROLES = %v, want broker and controller", roles)
			}
			id := envValue(kafkaEnv, "KAFKA_NODE_ID")
			if voters := envValue(kafkaEnv, "KAFKA_CONTROLLER_QUORUM_VOTERS"); !strings.HasPrefix(voters, id+"@") || strings.Contains(voters, ",") {
				t.Errorf("KAFKA_CONTROLLER_QUORUM_VOTERS = %q, want only node %s", voters, id)
			}
			if raw, err := base64.RawURLEncoding.DecodeString(envValue(kafkaEnv, "CLUSTER_ID")); err != nil || len(raw) != 16 {
				t.Errorf("CLUSTER_ID must be a base64 UUID (16 bytes): %v", err)
			}
			if kafka.Healthcheck == nil {
				t.Error("no healthcheck, so kafka-init cannot wait for service_healthy")
			}
		}},
		{"kafka listeners are consistent", func(t *testing.T) {
			listen := listeners(envValue(kafkaEnv, "KAFKA_LISTENERS"))
			advertised := listeners(envValue(kafkaEnv, "KAFKA_ADVERTISED_LISTENERS"))
			protocols := map[string]bool{}
			for _, pair := range strings.Split(envValue(kafkaEnv, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"), ",") {
				name, _, _ := strings.Cut(pair, ":")
				protocols[name] = true
			}
			for name := range listen {
				if !protocols[name] {
					t.Errorf("listener %s has no security protocol", name)
				}
			}
			controller := envValue(kafkaEnv, "KAFKA_CONTROLLER_LISTENER_NAMES")
			if _, ok := listen[controller]; !ok {
				t.Errorf("controller listener %q is not in KAFKA_LISTENERS", controller)
			}
			if _, ok := advertised[controller]; ok {
				t.Errorf("controller listener %q must not be advertised to clients", controller)
			}
			if inter := envValue(kafkaEnv, "KAFKA_INTER_BROKER_LISTENER_NAME"); advertised[inter] == "" {
				t.Errorf("inter-broker listener %q is not advertised", inter)
			}
			for name, addr := range advertised {
				if _, ok := listen[name]; !ok {
					t.Errorf("advertised listener %s is not a listener", name)
				}
				if host, port, _ := strings.Cut(addr, ":"); host == "localhost" && !publishes(kafka, port) {
					t.Errorf("host listener %s advertises %s but port %s is not published", name, addr, port)
				}
			}
			advertisedListenerOn(t, kafkaEnv, "localhost") // host access
		}},
		{"kafka-init creates the service's topic", func(t *testing.T) {
			initSvc := mustService(t, c, "kafka-init")
			if initSvc.Image != kafka.Image {
				t.Errorf("image %q, want the broker's %q", initSvc.Image, kafka.Image)
			}
			if d, ok := initSvc.DependsOn["kafka"]; !ok || d.Condition != "service_healthy" {
				t.Errorf("depends_on kafka = %+v, want service_healthy", d)
			}
			topic := envValue(svcEnv, "KAFKA_TOPIC")
			if topic == "" {
				topic = "users-events" // the binary's default
			}
			cmd := commandText(initSvc.Entrypoint, initSvc.Command)
			for _, want := range []string{"kafka-topics.sh", "--create", "--topic " + topic, "--bootstrap-server " + advertisedListenerOn(t, kafkaEnv, "kafka")} {
				if !strings.Contains(cmd, want) {
					t.Errorf("command does not contain %q:\n%s", want, cmd)
				}
			}
		}},
		{"usersvc is built from deploy/Dockerfile as usersvc:dev", func(t *testing.T) {
			if svc.Image != "usersvc:dev" || svc.Build.Context != ".." || svc.Build.Dockerfile != "deploy/Dockerfile" {
				t.Errorf("image %q, build %+v", svc.Image, svc.Build)
			}
		}},
		{"usersvc waits for a healthy database and a created topic", func(t *testing.T) {
			want := map[string]string{"mysql": "service_healthy", "kafka-init": "service_completed_successfully"}
			for dep, cond := range want {
				if got := svc.DependsOn[dep].Condition; got != cond {
					t.Errorf("depends_on %s: condition %q, want %q", dep, got, cond)
				}
			}
		}},
		{"every dependency exists and healthy conditions have a healthcheck", func(t *testing.T) {
			for _, name := range sortedKeys(c.Services) {
				for dep, d := range c.Services[name].DependsOn {
					target, ok := c.Services[dep]
					if !ok {
						t.Errorf("%s depends on unknown service %s", name, dep)
						continue
					}
					if d.Condition == "service_healthy" && target.Healthcheck == nil {
						t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
					}
				}
			}
		}},
		{"usersvc publishes its HTTP port 8080", func(t *testing.T) {
			_, port, _ := strings.Cut(envValue(svcEnv, "HTTP_ADDR"), ":")
			if port != "8080" || !publishes(svc, "8080") {
				t.Errorf("HTTP_ADDR port %q, ports %v", port, svc.Ports)
			}
			for _, p := range svc.Ports {
				if !strings.HasPrefix(p, "127.0.0.1:") {
					t.Errorf("port %q is published on every interface; bind it to 127.0.0.1", p)
				}
			}
		}},
		{"stop_grace_period exceeds the drain delay and SHUTDOWN_TIMEOUT", func(t *testing.T) {
			grace, err := time.ParseDuration(svc.StopGracePeriod)
			if err != nil {
				t.Fatalf("stop_grace_period %q: %v", svc.StopGracePeriod, err)
			}
			env := map[string]string{}
			for k, v := range svcEnv {
				if v != nil {
					env[k] = *v
				}
			}
			if budget := shutdownBudget(t, env); grace <= budget {
				t.Errorf("stop_grace_period %v <= SHUTDOWN_DRAIN_DELAY + SHUTDOWN_TIMEOUT %v: Docker would kill in-flight requests", grace, budget)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// TestComposeConfig runs Compose's own validation where a Compose client is
// installed (the structural checks above run everywhere).
func TestComposeConfig(t *testing.T) {
	var cmd *exec.Cmd
	if path, err := exec.LookPath("docker-compose"); err == nil {
		cmd = exec.Command(path, "-f", "compose.yaml", "config", "-q")
	} else if path, err := exec.LookPath("docker"); err == nil && exec.Command(path, "compose", "version").Run() == nil {
		cmd = exec.Command(path, "compose", "-f", "compose.yaml", "config", "-q")
	} else {
		t.Skip("no Compose client installed")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}

// publishes reports whether a Compose service publishes containerPort.
func publishes(s composeService, containerPort string) bool {
	for _, p := range s.Ports {
		p, _, _ = strings.Cut(p, "/") // protocol
		if p == containerPort || strings.HasSuffix(p, ":"+containerPort) {
			return true
		}
	}
	return false
}

// shutdownBudget is how long the binary may take after SIGTERM before its
// drain ends: SHUTDOWN_DRAIN_DELAY (still serving while /readyz is 503) plus
// SHUTDOWN_TIMEOUT (in-flight requests), parsed as the binary does, with
// its defaults for what env leaves unset.
func shutdownBudget(t *testing.T, env map[string]string) time.Duration {
	t.Helper()
	// The development bus and no authentication, so that only the shutdown
	// settings are judged.
	only := map[string]string{"EVENT_BUS": "log", "AUTH_MODE": "none"}
	for _, name := range []string{"SHUTDOWN_DRAIN_DELAY", "SHUTDOWN_TIMEOUT"} {
		if v, ok := env[name]; ok {
			only[name] = v
		}
	}
	cfg, err := cli.Load(lookupIn(only))
	if err != nil {
		t.Fatalf("shutdown settings: %v", err)
	}
	return cfg.DrainDelay + cfg.ShutdownTimeout
}

// Kubernetes ------------------------------------------------------------

func loadManifests(t *testing.T) manifests {
	t.Helper()
	return indexManifests(t, loadDocuments(t, "."))
}

func TestKustomizationListsExistingManifests(t *testing.T) {
	var k kustomization
	docs, err := parseYAMLFile("k8s/kustomization.yaml")
	if err != nil || len(docs) != 1 {
		t.Fatalf("k8s/kustomization.yaml: %v (%d documents)", err, len(docs))
	}
	if err := docs[0].Decode(&k); err != nil {
		t.Fatal(err)
	}
	if k.Kind != "Kustomization" || !strings.HasPrefix(k.APIVersion, "kustomize.config.k8s.io/") {
		t.Errorf("kind %q apiVersion %q", k.Kind, k.APIVersion)
	}
	if len(k.Resources) == 0 {
		t.Fatal("no resources")
	}
	for _, r := range k.Resources {
		t.Run(r, func(t *testing.T) {
			path := filepath.Join("k8s", r)
			if st, err := os.Stat(path); err != nil || st.IsDir() {
				t.Fatalf("listed resource is not a file: %v", err)
			}
			if strings.Contains(r, ".example.") {
				t.Error("an example (placeholder secrets) must not be applied")
			}
			if _, err := parseYAMLFile(path); err != nil {
				t.Error(err)
			}
		})
	}

	entries, err := os.ReadDir("k8s")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if !isYAML(name) || name == "kustomization.yaml" || strings.Contains(name, ".example.") {
			continue
		}
		t.Run("listed/"+name, func(t *testing.T) {
			if !slices.Contains(k.Resources, name) {
				t.Errorf("k8s/%s is not listed in kustomization.yaml", name)
			}
		})
	}

	t.Run("kustomize build", func(t *testing.T) {
		// An extra check where the tool exists: kustomize's own parser and
		// transformers accept the layout.
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Skip("kubectl not installed; the structural checks above still ran")
		}
		out, err := exec.Command(kubectl, "kustomize", "k8s").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl kustomize: %v\n%s", err, out)
		}
		for _, kind := range []string{"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
			if !strings.Contains(string(out), "kind: "+kind+"\n") {
				t.Errorf("the build has no %s", kind)
			}
		}
		if strings.Contains(string(out), "kind: Secret\n") {
			t.Error("the build applies a Secret (the example must stay out)")
		}
	})
}

// workload decodes the Deployment and its usersvc container.
func workload(t *testing.T, m manifests) (deployment, container) {
	t.Helper()
	var d deployment
	m.one(t, "Deployment", &d)
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == serviceName {
			return d, c
		}
	}
	t.Fatalf("the Deployment has no container named %s", serviceName)
	return d, container{}
}

func TestDeployment(t *testing.T) {
	m := loadManifests(t)
	d, c := workload(t, m)
	pod := d.Spec.Template.Spec
	sc := effective(pod.SecurityContext, c.SecurityContext)
	isTrue := func(b *bool) bool { return b != nil && *b }
	isFalse := func(b *bool) bool { return b != nil && !*b }

	probes := []struct {
		kind     string
		probe    *probe
		path     string
		required bool
	}{
		{"readiness", c.ReadinessProbe, "/readyz", true},
		{"liveness", c.LivenessProbe, "/healthz", true},
		{"startup", c.StartupProbe, "/healthz", false},
	}
	for _, p := range probes {
		t.Run(p.kind+" probe", func(t *testing.T) {
			if p.probe == nil {
				if p.required {
					t.Fatal("missing")
				}
				return
			}
			if p.probe.HTTPGet == nil {
				t.Fatal("not an httpGet probe")
			}
			if p.probe.HTTPGet.Path != p.path {
				t.Errorf("path %q, want %q", p.probe.HTTPGet.Path, p.path)
			}
			if portRef(p.probe.HTTPGet.Port, c) != adminPort {
				t.Errorf("port %q is not the container's admin port %d (ADMIN_ADDR)", p.probe.HTTPGet.Port.Value, adminPort)
			}
		})
	}

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"3 replicas", func(t *testing.T) {
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
				t.Errorf("replicas %v", d.Spec.Replicas)
			}
		}},
		{"selector matches the pod template", func(t *testing.T) {
			if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
				t.Errorf("selector %v, pod labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)
			}
		}},
		{"image is usersvc", func(t *testing.T) {
			if name, _, _ := strings.Cut(c.Image, ":"); name != serviceName {
				t.Errorf("image %q (kustomization's images: entry retargets usersvc)", c.Image)
			}
		}},
		{"resources have requests and limits", func(t *testing.T) {
			for _, r := range []string{"cpu", "memory"} {
				if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
					t.Errorf("%s: requests %q limits %q", r, c.Resources.Requests[r], c.Resources.Limits[r])
				}
			}
		}},
		{"runs as non-root", func(t *testing.T) {
			if !isTrue(sc.RunAsNonRoot) {
				t.Error("runAsNonRoot is not true")
			}
		}},
		{"read-only root filesystem", func(t *testing.T) {
			if !isTrue(sc.ReadOnlyRootFilesystem) {
				t.Error("readOnlyRootFilesystem is not true")
			}
		}},
		{"no privilege escalation", func(t *testing.T) {
			if !isFalse(sc.AllowPrivilegeEscalation) || isTrue(sc.Privileged) {
				t.Errorf("allowPrivilegeEscalation %v privileged %v", sc.AllowPrivilegeEscalation, sc.Privileged)
			}
		}},
		{"drops every capability", func(t *testing.T) {
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				t.Errorf("capabilities %+v", sc.Capabilities)
			}
		}},
		{"seccomp RuntimeDefault", func(t *testing.T) {
			if sc.SeccompProfile == nil || sc.SeccompProfile.Type != "RuntimeDefault" {
				t.Errorf("seccompProfile %+v", sc.SeccompProfile)
			}
		}},
		{"termination grace covers the preStop pause, the drain delay and SHUTDOWN_TIMEOUT", func(t *testing.T) {
			if pod.TerminationGracePeriodSeconds == nil {
				t.Fatal("terminationGracePeriodSeconds is unset")
			}
			grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
			pause, err := preStopPause(c)
			if err != nil {
				t.Fatal(err)
			}
			if pause <= 0 {
				t.Error("no preStop pause: the load balancer may still route to a draining pod")
			}
			budget := shutdownBudget(t, podEnvironment(t, m, pod, c))
			if grace <= pause+budget {
				t.Errorf("terminationGracePeriodSeconds %v <= preStop %v + SHUTDOWN_DRAIN_DELAY + SHUTDOWN_TIMEOUT %v", grace, pause, budget)
			}
		}},
		{"environment comes from the ConfigMap, secrets from a required Secret volume", func(t *testing.T) {
			var cms []string
			for _, e := range c.EnvFrom {
				if e.ConfigMapRef != nil {
					cms = append(cms, e.ConfigMapRef.Name)
				}
			}
			if !slices.Equal(cms, []string{serviceName}) {
				t.Errorf("envFrom ConfigMaps %v, want [%s]", cms, serviceName)
			}
			checkSecretsAsFiles(t, pod, c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// podEnvironment is what the container sees: the ConfigMap (and any Secret)
// it imports, then its own env entries, which win. A *_FILE variable is
// pointed at a file holding what the pod's mounted Secret volume would hold
// there (the example Secret's value), so the binary reads it as in the pod.
func podEnvironment(t *testing.T, m manifests, pod podSpec, c container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.EnvFrom {
		switch {
		case e.ConfigMapRef != nil:
			maps.Copy(env, configMapData(t, m, e.ConfigMapRef.Name))
		case e.SecretRef != nil:
			maps.Copy(env, secretData(t, m, e.SecretRef.Name))
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	dir := t.TempDir()
	for _, name := range sortedKeys(env) {
		if !strings.HasSuffix(name, "_FILE") {
			continue
		}
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(mountedSecretValue(t, m, pod, c, env[name])), 0o600); err != nil {
			t.Fatal(err)
		}
		env[name] = file
	}
	return env
}

// mountedSecretValue is the content of path in container c: a key of the
// Secret whose volume is mounted over it.
func mountedSecretValue(t *testing.T, m manifests, pod podSpec, c container, path string) string {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != vm.Name {
				continue
			}
			if v.Secret == nil {
				t.Fatalf("%s is on volume %s, which is not a Secret", path, v.Name)
			}
			key := rel
			for _, item := range v.Secret.Items {
				if item.Path == rel {
					key = item.Key
				}
			}
			value, ok := secretData(t, m, v.Secret.SecretName)[key]
			if !ok {
				t.Errorf("%s: Secret %s has no key %s, so the file would be missing", path, v.Secret.SecretName, key)
			}
			return value
		}
		t.Fatalf("%s: container %s mounts volume %s, which the pod does not define", path, c.Name, vm.Name)
	}
	t.Errorf("%s is not inside any volume container %s mounts", path, c.Name)
	return ""
}

func configMapData(t *testing.T, m manifests, name string) map[string]string {
	t.Helper()
	d, ok := m.objects["ConfigMap"][name]
	if !ok {
		t.Fatalf("ConfigMap %q is not defined under deploy/k8s", name)
	}
	var cm configMap
	if err := d.node.Decode(&cm); err != nil {
		t.Fatalf("%s: %v", d.file, err)
	}
	data, notStrings := scalarStrings(cm.Data)
	if len(notStrings) > 0 {
		t.Errorf("%s: values of %v are not strings (quote them)", d.file, notStrings)
	}
	return data
}

func secretData(t *testing.T, m manifests, name string) map[string]string {
	t.Helper()
	d, ok := m.objects["Secret"][name]
	if !ok {
		t.Fatalf("Secret %q is not defined under deploy/k8s (secret.example.yaml)", name)
	}
	var s secret
	if err := d.node.Decode(&s); err != nil {
		t.Fatalf("%s: %v", d.file, err)
	}
	data, notStrings := scalarStrings(s.StringData)
	if len(notStrings) > 0 {
		t.Errorf("%s: values of %v are not strings (quote them)", d.file, notStrings)
	}
	for k, v := range s.Data {
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Errorf("%s: data.%s is not base64: %v", d.file, k, err)
		}
		data[k] = string(raw)
	}
	return data
}

func secretVariable(name string) bool {
	for _, v := range cli.Variables {
		if v.Name == name {
			return v.Secret
		}
	}
	return false
}

func TestKubernetesEnvironmentIsKnownToTheBinary(t *testing.T) {
	m := loadManifests(t)
	d, c := workload(t, m)
	cm := configMapData(t, m, serviceName)
	sec := secretData(t, m, serviceName)

	sources := map[string]map[string]string{"ConfigMap": cm, "Secret": sec, "env": {}}
	for _, e := range c.Env {
		sources["env"][e.Name] = e.Value
	}
	for _, source := range sortedKeys(sources) {
		for _, name := range sortedKeys(sources[source]) {
			t.Run(source+"/"+name, func(t *testing.T) {
				if !cli.KnownVariable(name) {
					t.Errorf("%s is not read by the binary (adapters/cli Variables)", name)
				}
				if source == "ConfigMap" && secretVariable(name) {
					t.Errorf("%s is a secret: it belongs in the Secret, not the ConfigMap", name)
				}
				if source == "Secret" && !secretVariable(name) {
					t.Errorf("%s is not secret: keep it in the ConfigMap where it can be read", name)
				}
				if _, both := cm[name]; both && source == "Secret" {
					t.Errorf("%s is in both the ConfigMap and the Secret; one silently wins", name)
				}
			})
		}
	}

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"the Secret example carries the database and Kafka credentials as placeholders", func(t *testing.T) {
			for _, name := range []string{"DATABASE_URL", "KAFKA_CONFIG"} {
				if !strings.Contains(sec[name], "CHANGE_ME") {
					t.Errorf("%s = %q: want a CHANGE_ME placeholder, never a real credential", name, sec[name])
				}
			}
			if !strings.Contains(sec["KAFKA_CONFIG"], "sasl.") {
				t.Errorf("KAFKA_CONFIG shows no SASL settings: %q", sec["KAFKA_CONFIG"])
			}
		}},
		{"the binary accepts the pod's environment", func(t *testing.T) {
			cfg, err := cli.Load(lookupIn(podEnvironment(t, m, d.Spec.Template.Spec, c)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := gormstore.ParseURL(cfg.DatabaseURL); err != nil {
				t.Errorf("DATABASE_URL: %v", err)
			}
			if !strings.HasPrefix(cfg.DatabaseURL, "mysql://") {
				t.Errorf("DATABASE_URL %q: replicas need a shared MySQL database", cfg.DatabaseURL)
			}
			if cfg.KafkaBrokers == "" {
				t.Error("KAFKA_BROKERS is empty: events would go to stdout")
			}
			if cfg.LogFormat != "json" {
				t.Errorf("LOG_FORMAT %q", cfg.LogFormat)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

func TestServiceDisruptionBudgetAndAutoscaler(t *testing.T) {
	m := loadManifests(t)
	d, c := workload(t, m)
	podLabels := d.Spec.Template.Metadata.Labels

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"the Service routes to the pods' HTTP port", func(t *testing.T) {
			var s service
			m.one(t, "Service", &s)
			if !selects(s.Spec.Selector, podLabels) {
				t.Errorf("selector %v does not select pods labelled %v", s.Spec.Selector, podLabels)
			}
			if len(s.Spec.Ports) == 0 {
				t.Fatal("no ports")
			}
			for _, p := range s.Spec.Ports {
				if portRef(p.TargetPort, c) != 8080 {
					t.Errorf("targetPort %q is not the container's port 8080", p.TargetPort.Value)
				}
			}
		}},
		{"the PodDisruptionBudget covers the pods", func(t *testing.T) {
			var pdb podDisruptionBudget
			m.one(t, "PodDisruptionBudget", &pdb)
			if pdb.APIVersion != "policy/v1" {
				t.Errorf("apiVersion %q", pdb.APIVersion)
			}
			if !selects(pdb.Spec.Selector.MatchLabels, podLabels) {
				t.Errorf("selector %v does not select pods labelled %v", pdb.Spec.Selector.MatchLabels, podLabels)
			}
			if (pdb.Spec.MinAvailable.Kind == 0) == (pdb.Spec.MaxUnavailable.Kind == 0) {
				t.Error("set exactly one of minAvailable and maxUnavailable")
			}
		}},
		{"the HorizontalPodAutoscaler scales the Deployment on CPU", func(t *testing.T) {
			var hpa horizontalPodAutoscaler
			m.one(t, "HorizontalPodAutoscaler", &hpa)
			if hpa.APIVersion != "autoscaling/v2" {
				t.Errorf("apiVersion %q", hpa.APIVersion)
			}
			ref := hpa.Spec.ScaleTargetRef
			if ref.Kind != "Deployment" || ref.Name != d.Metadata.Name || ref.APIVersion != "apps/v1" {
				t.Errorf("scaleTargetRef %+v", ref)
			}
			if hpa.Spec.MinReplicas == nil || d.Spec.Replicas == nil || *hpa.Spec.MinReplicas != *d.Spec.Replicas || hpa.Spec.MaxReplicas <= *hpa.Spec.MinReplicas {
				t.Errorf("minReplicas %v maxReplicas %d, want min = the Deployment's replicas < max", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
			}
			cpu := false
			for _, metric := range hpa.Spec.Metrics {
				if metric.Type == "Resource" && metric.Resource != nil && metric.Resource.Name == "cpu" &&
					metric.Resource.Target.Type == "Utilization" && metric.Resource.Target.AverageUtilization != nil {
					cpu = true
				}
			}
			if !cpu {
				t.Error("no CPU utilization metric")
			}
			if c.Resources.Requests["cpu"] == "" {
				t.Error("CPU utilization needs a CPU request on the container")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// Guards the helpers themselves against silently accepting anything.
func TestHelpers(t *testing.T) {
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"selects: subset", selects(map[string]string{"a": "1"}, map[string]string{"a": "1", "b": "2"}), true},
		{"selects: other value", selects(map[string]string{"a": "1"}, map[string]string{"a": "2"}), false},
		{"selects: empty selector", selects(nil, map[string]string{"a": "1"}), false},
		{"publishes: host:container", publishes(composeService{Ports: []string{"127.0.0.1:9094:9094"}}, "9094"), true},
		{"publishes: other port", publishes(composeService{Ports: []string{"18080:8081"}}, "8080"), false},
		{"secretVariable: DATABASE_URL", secretVariable("DATABASE_URL"), true},
		{"secretVariable: LOG_LEVEL", secretVariable("LOG_LEVEL"), false},
		{"known: NOT_A_VARIABLE", cli.KnownVariable("NOT_A_VARIABLE"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	t.Run("compose environment: null passes the host's value", func(t *testing.T) {
		docs, err := parseYAMLFileFromString(t, "environment:\n  A: \"1\"\n  B:\n")
		if err != nil {
			t.Fatal(err)
		}
		var s composeService
		if err := docs[0].Decode(&s); err != nil {
			t.Fatal(err)
		}
		env, err := composeEnvironment(s.Environment)
		if err != nil {
			t.Fatal(err)
		}
		if env["A"] == nil || *env["A"] != "1" || env["B"] != nil {
			t.Errorf("got %v", env)
		}
	})
	t.Run("parse error is reported", func(t *testing.T) {
		if _, err := parseYAMLFileFromString(t, "a: [unclosed\n"); err == nil {
			t.Error("want a parse error")
		}
	})
	t.Run("preStop exec sleep", func(t *testing.T) {
		docs, err := parseYAMLFileFromString(t, "lifecycle:\n  preStop:\n    exec:\n      command: [/bin/sleep, \"7\"]\n")
		if err != nil {
			t.Fatal(err)
		}
		var c container
		if err := docs[0].Decode(&c); err != nil {
			t.Fatal(err)
		}
		if d, err := preStopPause(c); err != nil || d != 7*time.Second {
			t.Errorf("got %v, %v", d, err)
		}
	})
}

func parseYAMLFileFromString(t *testing.T, text string) ([]yaml.Node, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "doc.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return parseYAMLFile(path)
}
