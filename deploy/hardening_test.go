package deploy

import (
	"context"
	"io"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/marketplace/usersvc/adapters/cli"
	"github.com/marketplace/usersvc/adapters/gormstore"
)

// The deployment hardening of issue 20: no broad proxy range, PUBLIC_URL
// set, migrations in a Job with an account of their own, secrets as files,
// images by digest.

// tooBroad reports whether prefix covers a /8 of IPv4 or more (for IPv6: a
// /32, a registry's allocation to a whole provider, or more). Loopback is
// never too broad: it is the machine itself.
func tooBroad(p netip.Prefix) bool {
	p = p.Masked()
	if p.Addr().IsLoopback() {
		return false
	}
	if p.Addr().Is4() || p.Addr().Is4In6() {
		bits := p.Bits()
		if p.Addr().Is4In6() {
			bits -= 96
		}
		return bits <= 8
	}
	return p.Bits() <= 32
}

// cidrVariables are the variables whose values name address ranges.
var cidrVariables = []string{"TRUSTED_PROXIES", "GEO_STATIC"}

// rangesIn returns the prefixes of a TRUSTED_PROXIES (CIDR,CIDR) or
// GEO_STATIC (CIDR=CC,CIDR=CC) value; a bare address counts as a /32 or /128.
func rangesIn(t *testing.T, where, value string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, item := range strings.Split(value, ",") {
		item, _, _ = strings.Cut(strings.TrimSpace(item), "=")
		if item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				t.Errorf("%s: %q is not a CIDR: %v", where, item, err)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out
}

// rangeSettings walks a YAML document and returns every address range it
// sets: the cidrVariables as mapping keys (ConfigMap data, Compose
// environment) or as env entries (name/value), Compose's list form
// (NAME=value), and NetworkPolicy ipBlock CIDRs.
func rangeSettings(t *testing.T, file string, n *yaml.Node) map[string][]netip.Prefix {
	t.Helper()
	out := map[string][]netip.Prefix{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path)
			}
			if n.Kind == yaml.SequenceNode {
				for _, c := range n.Content {
					if c.Kind != yaml.ScalarNode {
						continue
					}
					if name, value, ok := strings.Cut(c.Value, "="); ok && slices.Contains(cidrVariables, name) {
						where := file + " " + path + " " + name
						out[where] = append(out[where], rangesIn(t, where, value)...)
					}
				}
			}
		case yaml.MappingNode:
			fields := map[string]*yaml.Node{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				fields[n.Content[i].Value] = n.Content[i+1]
			}
			if name, value := fields["name"], fields["value"]; name != nil && value != nil && slices.Contains(cidrVariables, name.Value) {
				where := file + " " + path + " env " + name.Value
				out[where] = append(out[where], rangesIn(t, where, value.Value)...)
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i].Value, n.Content[i+1]
				where := file + " " + path + "." + k
				switch {
				case slices.Contains(cidrVariables, k) && v.Kind == yaml.ScalarNode:
					out[where] = append(out[where], rangesIn(t, where, v.Value)...)
				case (k == "cidr" || k == "except") && strings.HasSuffix(path, ".ipBlock"):
					values := []*yaml.Node{v}
					if v.Kind == yaml.SequenceNode {
						values = v.Content
					}
					for _, c := range values {
						out[where] = append(out[where], rangesIn(t, where, c.Value)...)
					}
				}
				walk(v, path+"."+k)
			}
		}
	}
	walk(n, "")
	return out
}

// TestNoBroadAddressRanges: no shipped manifest (Kubernetes or Compose)
// trusts, locates or admits a /8-wide range: with TRUSTED_PROXIES
// 10.0.0.0/8 any pod could claim any client address and X-Forwarded-Host.
func TestNoBroadAddressRanges(t *testing.T) {
	docs := loadDocuments(t, ".")
	proxies := 0
	for _, d := range docs {
		for where, prefixes := range rangeSettings(t, d.file, &d.node) {
			if strings.HasSuffix(where, "TRUSTED_PROXIES") {
				proxies++
			}
			for _, p := range prefixes {
				if tooBroad(p) {
					t.Errorf("%s: %s is /8-wide or wider; name the proxies (or clients) themselves", where, p)
				}
			}
		}
	}
	if proxies < 2 {
		t.Errorf("found TRUSTED_PROXIES in %d places, want the ConfigMap's and Compose's: the walk misses them", proxies)
	}
}

func TestTooBroad(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		want bool
	}{
		{"10.0.0.0/8", true},
		{"0.0.0.0/0", true},
		{"::/0", true},
		{"2001:db8::/32", true},
		{"::ffff:10.0.0.0/104", true},
		{"10.0.0.0/9", false},
		{"172.30.77.1/32", false},
		{"192.0.2.10/32", false},
		{"127.0.0.0/8", false},
		{"2001:db8:1::/48", false},
	} {
		if got := tooBroad(netip.MustParsePrefix(tc.cidr)); got != tc.want {
			t.Errorf("tooBroad(%s) = %v, want %v", tc.cidr, got, tc.want)
		}
	}
	// The walk finds ranges in each form a manifest uses.
	var n yaml.Node
	text := "data:\n  TRUSTED_PROXIES: 10.0.0.0/8\nenv:\n  - name: GEO_STATIC\n    value: 11.0.0.0/8=CH\nenvironment:\n  - TRUSTED_PROXIES=12.0.0.0/8\nspec:\n  ipBlock:\n    cidr: 13.0.0.0/8\n"
	if err := yaml.Unmarshal([]byte(text), &n); err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, ps := range rangeSettings(t, "x", &n) {
		for _, p := range ps {
			found = append(found, p.String())
		}
	}
	slices.Sort(found)
	if want := []string{"10.0.0.0/8", "11.0.0.0/8", "12.0.0.0/8", "13.0.0.0/8"}; !slices.Equal(found, want) {
		t.Errorf("found %v, want %v", found, want)
	}
}

// workloads returns every pod template of the manifests with its kind/name.
func workloads(t *testing.T, m manifests) map[string]podSpec {
	t.Helper()
	out := map[string]podSpec{}
	for _, d := range m.objects["Deployment"] {
		var dep deployment
		if err := d.node.Decode(&dep); err != nil {
			t.Fatal(err)
		}
		out["Deployment/"+dep.Metadata.Name] = dep.Spec.Template.Spec
	}
	for _, d := range m.objects["Job"] {
		var j job
		if err := d.node.Decode(&j); err != nil {
			t.Fatal(err)
		}
		out["Job/"+j.Metadata.Name] = j.Spec.Template.Spec
	}
	return out
}

// checkSecretsAsFiles: no secret reaches container c as an environment
// variable (no secretRef, no secretKeyRef, no secret variable set inline);
// every *_FILE it is given lies in a read-only mount of a required Secret.
func checkSecretsAsFiles(t *testing.T, pod podSpec, c container) {
	t.Helper()
	for _, e := range c.EnvFrom {
		if e.SecretRef != nil {
			t.Errorf("container %s imports Secret %s as environment variables; mount it and use the *_FILE variables", c.Name, e.SecretRef.Name)
		}
	}
	files := 0
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("container %s: %s comes from valueFrom; secrets come as files", c.Name, e.Name)
		}
		if secretVariable(e.Name) {
			t.Errorf("container %s sets the secret %s inline", c.Name, e.Name)
		}
		base, ok := strings.CutSuffix(e.Name, "_FILE")
		if !ok {
			continue
		}
		files++
		if !slices.Contains(cli.FileVariables, base) {
			t.Errorf("container %s: %s is not a file variant the binary reads", c.Name, e.Name)
		}
		mounted := false
		for _, vm := range c.VolumeMounts {
			if !strings.HasPrefix(e.Value, strings.TrimSuffix(vm.MountPath, "/")+"/") {
				continue
			}
			for _, v := range pod.Volumes {
				if v.Name != vm.Name {
					continue
				}
				mounted = v.Secret != nil && (v.Secret.Optional == nil || !*v.Secret.Optional) && vm.ReadOnly
			}
		}
		if !mounted {
			t.Errorf("container %s: %s=%s is not in a read-only mount of a required Secret volume", c.Name, e.Name, e.Value)
		}
	}
	if files == 0 {
		t.Errorf("container %s reads no secret from a file", c.Name)
	}
}

func TestSecretsAreMountedFiles(t *testing.T) {
	m := loadManifests(t)
	pods := workloads(t, m)
	if len(pods) < 2 {
		t.Fatalf("workloads %v: want the Deployment and the migration Job", sortedKeys(pods))
	}
	for _, name := range sortedKeys(pods) {
		t.Run(name, func(t *testing.T) {
			for _, c := range pods[name].Containers {
				checkSecretsAsFiles(t, pods[name], c)
			}
		})
	}
	t.Run("every Secret key is a variable with a file variant", func(t *testing.T) {
		for _, name := range sortedKeys(m.objects["Secret"]) {
			for key := range secretData(t, m, name) {
				if !slices.Contains(cli.FileVariables, key) {
					t.Errorf("Secret %s: %s has no *_FILE variant, so it could only be an environment variable", name, key)
				}
			}
		}
	})
}

// TestMigrationsRunAsAJob: the serving pods do not migrate and know their
// public URL; a Job runs `usersvc migrate` with a database account of its
// own (another user on the same database).
func TestMigrationsRunAsAJob(t *testing.T) {
	m := loadManifests(t)
	d, c := workload(t, m)
	serving, err := cli.Load(lookupIn(podEnvironment(t, m, d.Spec.Template.Spec, c)))
	if err != nil {
		t.Fatal(err)
	}
	if serving.Migrate {
		t.Error("the Deployment runs with MIGRATE=true: its account would need DDL rights")
	}
	if serving.PublicURL == nil || serving.PublicURL.Scheme != "https" {
		t.Errorf("PUBLIC_URL %v: want the https:// address clients use", serving.PublicURL)
	}

	var j job
	m.one(t, "Job", &j)
	pod := j.Spec.Template.Spec
	if pod.RestartPolicy != "Never" && pod.RestartPolicy != "OnFailure" {
		t.Errorf("restartPolicy %q", pod.RestartPolicy)
	}
	if j.Spec.BackoffLimit == nil || j.Spec.ActiveDeadlineSeconds == nil {
		t.Error("the Job sets no backoffLimit or activeDeadlineSeconds: a failing migration would retry without bound")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("the Job has %d containers, want 1", len(pod.Containers))
	}
	jc := pod.Containers[0]
	if name, _, _ := strings.Cut(jc.Image, ":"); name != serviceName {
		t.Errorf("the Job runs image %q, want %s (the same pinned image)", jc.Image, serviceName)
	}
	if len(jc.Command) > 0 {
		t.Errorf("command %v replaces the image's entrypoint; give the sub-command as args", jc.Command)
	}
	sc := effective(pod.SecurityContext, jc.SecurityContext)
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the Job's container must run as non-root on a read-only root filesystem")
	}

	// The Job's arguments, as the binary parses them, run the migration.
	var migrated *cli.Config
	fail := func(name string) func(context.Context, cli.Config) error {
		return func(context.Context, cli.Config) error { t.Errorf("the Job runs %s, not migrate", name); return nil }
	}
	code := cli.Run(context.Background(), jc.Args, lookupIn(podEnvironment(t, m, pod, jc)), io.Discard, io.Discard, cli.Commands{
		Serve:   fail("serve"),
		Migrate: func(_ context.Context, cfg cli.Config) error { migrated = &cfg; return nil },
		MigrateStatus: func(context.Context, cli.Config, io.Writer) error {
			t.Error("the Job runs migrate status, which changes nothing")
			return nil
		},
	})
	if code != 0 || migrated == nil {
		t.Fatalf("usersvc %v: exit %d, migrate ran: %v", jc.Args, code, migrated != nil)
	}
	user := func(raw string) (*url.URL, string) {
		t.Helper()
		if _, err := gormstore.ParseURL(raw); err != nil {
			t.Fatalf("DATABASE_URL: %v", err)
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return u, u.User.Username()
	}
	su, servingUser := user(serving.DatabaseURL)
	mu, migrateUser := user(migrated.DatabaseURL)
	if servingUser == "" || servingUser == migrateUser {
		t.Errorf("the Deployment connects as %q and the Job as %q: want two accounts", servingUser, migrateUser)
	}
	if su.Host != mu.Host || su.Path != mu.Path {
		t.Errorf("the Job migrates %s%s, the Deployment serves %s%s", mu.Host, mu.Path, su.Host, su.Path)
	}
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// TestImagesPinnedByDigest: every image the kustomization sets is pinned by
// a sha256 digest (a tag can be moved to other content), and every
// container's image is one of those entries.
func TestImagesPinnedByDigest(t *testing.T) {
	var k kustomization
	docs, err := parseYAMLFile("k8s/kustomization.yaml")
	if err != nil || len(docs) != 1 {
		t.Fatalf("k8s/kustomization.yaml: %v", err)
	}
	if err := docs[0].Decode(&k); err != nil {
		t.Fatal(err)
	}
	if len(k.Images) == 0 {
		t.Fatal("the kustomization sets no image: the manifests would run a mutable tag")
	}
	names := map[string]bool{}
	for _, img := range k.Images {
		names[img.Name] = true
		if !digestRE.MatchString(img.Digest) {
			t.Errorf("image %s: digest %q, want sha256:<64 hex digits>", img.Name, img.Digest)
		}
		if img.NewTag != "" || strings.ContainsAny(img.NewName, "@") {
			t.Errorf("image %s: newTag %q newName %q; the digest alone names the content", img.Name, img.NewTag, img.NewName)
		}
	}
	m := loadManifests(t)
	for name, pod := range workloads(t, m) {
		for _, c := range pod.Containers {
			if repo, _, _ := strings.Cut(c.Image, "@"); !names[repo] || strings.Contains(repo, ":") {
				t.Errorf("%s container %s: image %q is not one the kustomization pins (want the bare name it lists)", name, c.Name, c.Image)
			}
		}
	}
}
