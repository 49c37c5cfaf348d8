package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/gormstore"
	"github.com/marketplace/usersvc/adapters/kafka/kafkatest"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/reliability/stack"
	"github.com/marketplace/usersvc/test/usersvcproc"
)

// startProcess runs the binary with static geolocation and debug logs;
// env adds the database and the broker.
func startProcess(t *testing.T, env ...string) *usersvcproc.Process {
	t.Helper()
	base := []string{"GEO_PROVIDER=static", "GEO_STATIC=127.0.0.0/8=CH", "LOG_FORMAT=json", "LOG_LEVEL=debug"}
	return usersvcproc.Start(t, usersvcproc.Binary(t), 30*time.Second, append(base, env...)...)
}

// TestSIGKILLBetweenCommitAndPublish: with the broker down, the API keeps
// committing users (and their events to the outbox) without waiting; the
// process is then killed with SIGKILL, so nothing is flushed; after a
// restart with the broker back, every pending event is published, once
// per user and in the outbox's order.
func TestSIGKILLBetweenCommitAndPublish(t *testing.T) {
	const users = 25
	const topic = "users-events"
	broker := kafkatest.Start(t, topic, 3)
	broker.Stop() // its address is now a closed port
	dbPath := filepath.Join(t.TempDir(), "users.db")
	env := []string{
		"DATABASE_URL=sqlite://" + dbPath, "EVENT_BUS=kafka", "KAFKA_BROKERS=" + broker.Addr(), "KAFKA_TOPIC=" + topic,
		"KAFKA_CONFIG=reconnect.backoff.max.ms=200", "OUTBOX_POLL_INTERVAL=200ms",
	}
	first := startProcess(t, env...)

	passwords := map[string]bool{}
	var slowest time.Duration
	ids := map[string]string{} // user id -> email
	for i := range users {
		email := fmt.Sprintf("killed%d@example.ch", i)
		password := fmt.Sprintf("kill-switch-%d", i)
		passwords[password] = true
		start := time.Now()
		res, err := http.Post(first.Base+"/api/v1/users", "application/json", strings.NewReader(
			fmt.Sprintf(`{"first_name":"Ada","last_name":"Lovelace","email":%q,"password":%q}`, email, password)))
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			ID int64 `json:"id"`
		}
		_ = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		slowest = max(slowest, time.Since(start))
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("create %d with the broker down: %d", i, res.StatusCode)
		}
		ids[strconv.FormatInt(body.ID, 10)] = email
	}
	if slowest > time.Second {
		t.Errorf("a creation took %v with the broker down: the API waited for Kafka", slowest)
	}
	if n := backlog(t, dbPath); n != users {
		t.Fatalf("the outbox holds %d unpublished events before the kill, want %d", n, users)
	}

	if err := first.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := first.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("first process ended with %v, want killed by SIGKILL", err)
	}
	if n := backlog(t, dbPath); n != users {
		t.Fatalf("after SIGKILL the outbox holds %d unpublished events, want %d", n, users)
	}

	broker.Restart()
	second := startProcess(t, env...)
	recs := kafkatest.Consume(t, broker.Addr(), topic, users, 30*time.Second)
	deliveries, duplicates := stack.FirstDeliveries(t, recs)
	lastSeq := map[int32]int64{}
	for _, d := range deliveries {
		ev, key := d.Event, d.Key
		if ev.Action != domain.ActionCreate || ids[key] == "" || ev.Data.Email != ids[key] || strconv.FormatInt(ev.Data.ID, 10) != key {
			t.Errorf("unexpected event %+v with key %q", ev, key)
		}
		// Within a partition, users were created (and their events queued)
		// in id order: the relay kept that order.
		if id := ev.Data.ID; id < lastSeq[d.Partition] {
			t.Errorf("partition %d: user %d published after user %d", d.Partition, id, lastSeq[d.Partition])
		} else {
			lastSeq[d.Partition] = id
		}
	}
	if len(deliveries) != users {
		t.Fatalf("%d distinct events published after the restart, want %d", len(deliveries), users)
	}
	if err := second.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("second process after SIGTERM: %v\n%s", err, second.Stderr.String())
	}
	if n := backlog(t, dbPath); n != 0 {
		t.Errorf("%d events still unpublished after the restart", n)
	}
	for name, out := range map[string][]byte{
		"first stderr": first.Stderr.Bytes(), "second stderr": second.Stderr.Bytes(), "first stdout": first.Stdout.Bytes(), "second stdout": second.Stdout.Bytes(),
	} {
		for p := range passwords {
			if bytes.Contains(out, []byte(p)) {
				t.Errorf("%s contains a password", name)
			}
		}
		if bytes.Contains(out, []byte("$argon2id$")) {
			t.Errorf("%s contains a hash", name)
		}
	}
	t.Logf("%d users committed with the broker down (slowest %v), SIGKILL, restart: %d events published, %d duplicates",
		users, slowest.Round(time.Millisecond), len(deliveries), duplicates)
}

// backlog counts unpublished events in the SQLite file (a second reader
// next to a running process is fine in WAL mode).
func backlog(t *testing.T, dbPath string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := gormstore.Open(ctx, gormstore.Config{URL: "sqlite://" + dbPath})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, _, err := st.Backlog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
