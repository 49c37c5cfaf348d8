package deploy

import (
	"net"
	"testing"

	"github.com/marketplace/usersvc/adapters/cli"
)

// adminPort is the admin listener's port (ADMIN_ADDR) in the manifests:
// metrics, probes and pprof live there, not on the API port.
const adminPort = 9090

// TestAdminPortAndAuthentication: the pods authenticate callers, are
// scraped and probed on the admin port, and the NetworkPolicy opens the API
// port to callers and the admin port to monitoring only.
func TestAdminPortAndAuthentication(t *testing.T) {
	m := loadManifests(t)
	d, c := workload(t, m)
	env := podEnvironment(t, m, d.Spec.Template.Spec, c)

	cfg, err := cli.Load(lookupIn(env))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AuthMode != cli.AuthJWT {
		t.Errorf("AUTH_MODE %q: production manifests must authenticate", cfg.AuthMode)
	}
	if _, port, err := net.SplitHostPort(cfg.AdminAddr); err != nil || port != "9090" {
		t.Errorf("ADMIN_ADDR %q does not listen on %d", cfg.AdminAddr, adminPort)
	}
	if host, _, _ := net.SplitHostPort(cfg.AdminAddr); host == "127.0.0.1" || host == "localhost" {
		t.Errorf("ADMIN_ADDR %q: the kubelet and Prometheus cannot reach loopback", cfg.AdminAddr)
	}

	var annotated struct {
		Spec struct {
			Template struct {
				Metadata struct {
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"metadata"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	m.one(t, "Deployment", &annotated)
	a := annotated.Spec.Template.Metadata.Annotations
	if a["prometheus.io/port"] != "9090" || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v: want the admin port 9090 and /metrics", a)
	}

	var np struct {
		Spec struct {
			PodSelector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"podSelector"`
			PolicyTypes []string `yaml:"policyTypes"`
			Ingress     []struct {
				From []struct {
					NamespaceSelector *struct {
						MatchLabels map[string]string `yaml:"matchLabels"`
					} `yaml:"namespaceSelector"`
					PodSelector any `yaml:"podSelector"`
					IPBlock     any `yaml:"ipBlock"`
				} `yaml:"from"`
				Ports []struct {
					Port any `yaml:"port"`
				} `yaml:"ports"`
			} `yaml:"ingress"`
		} `yaml:"spec"`
	}
	m.one(t, "NetworkPolicy", &np)
	if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != serviceName {
		t.Errorf("NetworkPolicy selects %v, not the usersvc pods", np.Spec.PodSelector.MatchLabels)
	}
	if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != "Ingress" {
		t.Errorf("policyTypes %v", np.Spec.PolicyTypes)
	}
	sources := map[string][]map[string]string{} // port -> namespace selectors admitted
	for _, rule := range np.Spec.Ingress {
		if len(rule.From) == 0 {
			t.Fatalf("an ingress rule without from admits everyone: %+v", rule)
		}
		for _, p := range rule.Ports {
			for _, f := range rule.From {
				if f.NamespaceSelector == nil || f.PodSelector != nil || f.IPBlock != nil {
					t.Errorf("rule source %+v: want a namespace selector only", f)
					continue
				}
				port, _ := p.Port.(string)
				sources[port] = append(sources[port], f.NamespaceSelector.MatchLabels)
			}
		}
	}
	if len(sources) != 2 || len(sources["http"]) == 0 || len(sources["admin"]) == 0 {
		t.Fatalf("ports admitted %v: want exactly http and admin", sources)
	}
	for _, sel := range sources["admin"] {
		if sel["kubernetes.io/metadata.name"] != "monitoring" || len(sel) != 1 {
			t.Errorf("admin port admitted from %v: want only the monitoring namespace", sel)
		}
	}
	for _, sel := range sources["http"] {
		if len(sel) == 0 || sel["kubernetes.io/metadata.name"] == "monitoring" {
			t.Errorf("API port admitted from %v: want the calling namespaces", sel)
		}
	}
}
