// Package netfault puts a TCP fault proxy (Toxiproxy, run in process)
// between a test's client and a server on 127.0.0.1, so a test can make the
// network fail the way production networks do: blackholed (connections stay
// open, nothing arrives), slow, or reset mid-stream.
package netfault

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy forwards 127.0.0.1:Port to an upstream address, with faults on demand.
type Proxy struct {
	// Addr is the proxy's listening address (127.0.0.1:port).
	Addr string
	// Port is Addr's port.
	Port int

	p      *toxiproxy.Proxy
	mu     sync.Mutex
	toxics []string
}

var (
	serverOnce sync.Once
	server     *toxiproxy.ApiServer
)

// New starts a proxy to upstream (host:port) on a free loopback port; it
// stops when t ends.
func New(t testing.TB, name, upstream string) *Proxy {
	t.Helper()
	serverOnce.Do(func() {
		server = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	})
	p := toxiproxy.NewProxy(server, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy %s to %s: %v", name, upstream, err)
	}
	t.Cleanup(p.Stop)
	_, port, err := net.SplitHostPort(p.Listen)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscan(port, &n); err != nil {
		t.Fatal(err)
	}
	return &Proxy{Addr: p.Listen, Port: n, p: p}
}

// ForURL starts a proxy to the server rawURL names (scheme://[user@]host:port/...)
// and returns it with rawURL rewritten to go through it.
func ForURL(t testing.TB, name, rawURL string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Port() == "" {
		t.Fatalf("proxy %s: %q names no host:port (%v)", name, rawURL, err)
	}
	p := New(t, name, u.Host)
	u.Host = p.Addr
	return p, u.String()
}

// Blackhole stops every byte in both directions while keeping the
// connections open, as a dead route or a failed-over host does: even when
// one side gives up and closes, the other side is not told.
func (p *Proxy) Blackhole(t testing.TB) {
	t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		p.add(t, "blackhole", stream, map[string]int64{})
	}
}

// blackholeToxic drops every chunk and, unlike Toxiproxy's timeout toxic,
// does not pass a close on: behind a dead route the peer never learns that
// the other end went away (no FIN, no RST), so its session, and whatever
// locks that session holds, live on until the peer's own timeouts.
type blackholeToxic struct{}

func (*blackholeToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				<-stub.Interrupt // closed on this side: stay silent towards the other
				return
			}
		}
	}
}

func init() { toxics.Register("blackhole", new(blackholeToxic)) }

// Latency delays every chunk of data by d in both directions.
func (p *Proxy) Latency(t testing.TB, d time.Duration) {
	t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		p.add(t, "latency", stream, map[string]int64{"latency": d.Milliseconds()})
	}
}

// ResetPeer resets every connection (TCP RST) after timeout, and every new
// one likewise, until Heal.
func (p *Proxy) ResetPeer(t testing.TB, timeout time.Duration) {
	t.Helper()
	p.add(t, "reset_peer", "upstream", map[string]int64{"timeout": timeout.Milliseconds()})
}

// Heal removes every fault: data flows again.
func (p *Proxy) Heal(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	names := p.toxics
	p.toxics = nil
	p.mu.Unlock()
	for _, name := range names {
		if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
			t.Fatalf("remove toxic %s: %v", name, err)
		}
	}
}

func (p *Proxy) add(t testing.TB, kind, stream string, attrs map[string]int64) {
	t.Helper()
	p.mu.Lock()
	name := fmt.Sprintf("%s_%s_%d", kind, stream, len(p.toxics))
	p.toxics = append(p.toxics, name)
	p.mu.Unlock()
	body, err := json.Marshal(map[string]any{
		"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attrs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
		t.Fatalf("add toxic %s: %v", name, err)
	}
}
