package containers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
)

// A vhost cannot be created or deleted over AMQP, and the management
// plugin (HTTP API) is off in both images (the local one writes its own
// plugins file). What both images have is rabbitmqctl, run in the
// container; a run costs 0.4-0.7 s on a loaded 2-core machine, for one
// vhost or ten alike: the start of the CLI's Erlang VM. So vhosts are
// created a batch at a time by one `rabbitmqctl import_definitions`, in the
// background before the pool runs out, and deleted by one `rabbitmqctl
// eval` for those whose tests ended meanwhile, in the background too: a
// test waits for neither (but the package's first for the first batch).
const (
	vhostBatch   = 8
	rabbitNode   = "rabbit@localhost"
	vhostPrefix  = "usersvc-test-"
	rabbitctlFor = time.Minute
	// actingUser is who the broker's log says deleted a vhost.
	actingUser = "usersvc-tests"
)

// vhosts hands out fresh vhosts of one broker container, on which the
// broker's user (rabbitUser) has every permission, and deletes them.
type vhosts struct {
	container *testcontainers.DockerContainer

	fill    sync.Mutex // guards free, filling and fillErr
	free    []string
	filling chan struct{} // closed when the batch being created is there
	fillErr error         // why the last batch is not

	mu       sync.Mutex
	done     *sync.Cond // signalled when deleting turns false
	gone     []string   // waiting for deletion
	deleting bool
	err      error // the first failed deletion
}

func newVhosts(c *testcontainers.DockerContainer) *vhosts {
	v := &vhosts{container: c}
	v.done = sync.NewCond(&v.mu)
	return v
}

// take returns a vhost no one had. The next batch is created in the
// background once the pool runs low, so that a test seldom waits for it.
func (v *vhosts) take(ctx context.Context) (string, error) {
	v.fill.Lock()
	defer v.fill.Unlock()
	for len(v.free) == 0 {
		if v.filling == nil {
			v.refill()
		}
		filled := v.filling
		v.fill.Unlock()
		select {
		case <-filled:
		case <-ctx.Done():
		}
		v.fill.Lock()
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if err := v.fillErr; err != nil {
			v.fillErr = nil // the next take tries again
			return "", err
		}
	}
	name := v.free[0]
	v.free = v.free[1:]
	if len(v.free) <= vhostBatch/4 && v.filling == nil {
		v.refill()
	}
	return name, nil
}

// refill starts creating a batch; v.fill is held.
func (v *vhosts) refill() {
	filled := make(chan struct{})
	v.filling = filled
	go func() {
		names := make([]string, vhostBatch)
		for i := range names {
			names[i] = vhostPrefix + randomHex(6)
		}
		err := v.create(context.Background(), names)
		v.fill.Lock()
		defer v.fill.Unlock()
		if err == nil {
			v.free = append(v.free, names...)
		}
		v.fillErr = err
		v.filling = nil
		close(filled)
	}()
}

// create adds the vhosts, with every permission for rabbitUser, through
// the definitions importer: one CLI run for the lot, with no
// version-specific call.
func (v *vhosts) create(ctx context.Context, names []string) error {
	type vhost struct {
		Name string `json:"name"`
	}
	type permission struct {
		User      string `json:"user"`
		Vhost     string `json:"vhost"`
		Configure string `json:"configure"`
		Write     string `json:"write"`
		Read      string `json:"read"`
	}
	defs := struct {
		Vhosts      []vhost      `json:"vhosts"`
		Permissions []permission `json:"permissions"`
	}{}
	for _, n := range names {
		defs.Vhosts = append(defs.Vhosts, vhost{Name: n})
		defs.Permissions = append(defs.Permissions, permission{User: rabbitUser, Vhost: n, Configure: ".*", Write: ".*", Read: ".*"})
	}
	data, err := json.Marshal(defs)
	if err != nil {
		return err
	}
	path := "/tmp/usersvc-vhosts-" + randomHex(4) + ".json"
	ctx, cancel := context.WithTimeout(ctx, rabbitctlFor)
	defer cancel()
	if err := v.container.CopyToContainer(ctx, data, path, 0o644); err != nil {
		return fmt.Errorf("copy vhost definitions into the broker container: %w", err)
	}
	if _, err := v.rabbitmqctl(ctx, "import_definitions", path); err != nil {
		return fmt.Errorf("create vhosts: %w", err)
	}
	return nil
}

// release queues name for deletion, which runs in the background (a
// batch per CLI run) so that a test's end does not wait for it.
func (v *vhosts) release(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gone = append(v.gone, name)
	if !v.deleting {
		v.deleting = true
		go v.deleteQueued()
	}
}

func (v *vhosts) deleteQueued() {
	for {
		v.mu.Lock()
		batch := v.gone
		v.gone = nil
		if len(batch) == 0 {
			v.deleting = false
			v.done.Broadcast()
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
		err := v.delete(batch)
		v.mu.Lock()
		if err != nil && v.err == nil {
			v.err = err
		}
		v.mu.Unlock()
	}
}

// delete removes the vhosts and everything in them (exchanges, queues,
// the connections still open on them). rabbit_vhost:delete/2 is what
// `rabbitmqctl delete_vhost` calls, in 3.10 as in 3.13; eval makes it one
// CLI run for the batch.
func (v *vhosts) delete(names []string) error {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = `<<"` + n + `">>` // n is vhostPrefix and hex digits
	}
	expr := fmt.Sprintf(`R = [rabbit_vhost:delete(V, <<"%s">>) || V <- [%s]], case lists:usort(R) of [ok] -> ok; _ -> R end.`,
		actingUser, strings.Join(quoted, ", "))
	ctx, cancel := context.WithTimeout(context.Background(), rabbitctlFor)
	defer cancel()
	out, err := v.rabbitmqctl(ctx, "eval", expr)
	if err == nil && lastLines(out, 1) != "ok" {
		err = fmt.Errorf("rabbitmqctl eval answered %q", out)
	}
	if err != nil {
		return fmt.Errorf("delete vhosts %s: %w", strings.Join(names, " "), err)
	}
	return nil
}

// wait returns once the vhosts released so far are deleted (and a batch
// being created is there), with the first deletion error of the broker's
// life.
func (v *vhosts) wait() error {
	v.fill.Lock()
	filled := v.filling
	v.fill.Unlock()
	if filled != nil {
		<-filled // not to leave a CLI run against a container being removed
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for v.deleting {
		v.done.Wait()
	}
	return v.err
}

// rabbitmqctl runs the CLI in the container against the broker and returns
// its output (stdout and stderr), failing on a non-zero exit status.
func (v *vhosts) rabbitmqctl(ctx context.Context, args ...string) (string, error) {
	cmd := append([]string{"rabbitmqctl", "-q", "-n", rabbitNode}, args...)
	code, r, err := v.container.Exec(ctx, cmd, tcexec.Multiplexed())
	if err != nil {
		return "", fmt.Errorf("rabbitmqctl %s: %w", args[0], err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("rabbitmqctl %s: read its output: %w", args[0], err)
	}
	s := strings.TrimSpace(string(out))
	if code != 0 {
		return s, fmt.Errorf("rabbitmqctl %s exited with %d: %s", args[0], code, lastLines(s, 5))
	}
	return s, nil
}

// NewVhost gives t a vhost of its own, on which the broker's user has every
// permission, and returns the AMQP URL on it. When t ends (after t's later
// cleanups, such as closing a connection on it) the vhost is deleted with
// everything in it, in the background: Terminate waits for that and
// reports a failure.
func (r *RabbitMQ) NewVhost(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*rabbitctlFor)
	defer cancel()
	name, err := r.vhosts.take(ctx)
	if err != nil {
		t.Fatalf("RabbitMQ vhost for %s: %v", t.Name(), err)
	}
	t.Cleanup(func() { r.vhosts.release(name) })
	return r.vhostURL(name)
}

// vhostURL is the AMQP URL on vhost (escaped: a vhost may hold a slash;
// "" is the default vhost).
func (r *RabbitMQ) vhostURL(vhost string) string {
	u := url.URL{Scheme: "amqp", User: url.UserPassword(rabbitUser, r.password), Host: r.addr(),
		Path: "/" + vhost, RawPath: "/" + url.PathEscape(vhost)}
	return u.String()
}

// testVhosts are the vhost URLs AMQPURL handed out, by test name, until
// the test ends.
var testVhosts = struct {
	sync.Mutex
	byTest map[string]string
}{byTest: map[string]string{}}

// testVhost returns the AMQP URL of t's vhost on r: the one t (or the
// nearest of its parents) already has, otherwise a new one.
func testVhost(t testing.TB, r *RabbitMQ) string {
	t.Helper()
	testVhosts.Lock()
	defer testVhosts.Unlock()
	for name := t.Name(); ; {
		if u, ok := testVhosts.byTest[name]; ok {
			return u
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			break
		}
		name = name[:i]
	}
	u := r.NewVhost(t)
	name := t.Name()
	testVhosts.byTest[name] = u
	t.Cleanup(func() {
		testVhosts.Lock()
		defer testVhosts.Unlock()
		delete(testVhosts.byTest, name)
	})
	return u
}
