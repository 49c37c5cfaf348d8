package logpublisher_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/marketplace/usersvc/adapters/logpublisher"
	"github.com/marketplace/usersvc/domain"
)

func message(t *testing.T, id int64, action domain.Action) domain.Message {
	t.Helper()
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	u := domain.User{ID: id, Email: fmt.Sprintf("u%d@example.com", id), FirstName: "Ada", LastName: "Lovelace",
		PasswordHash: "$argon2id$secret", CreatedAt: at, UpdatedAt: at}
	m, err := domain.NewEvent(fmt.Sprintf("ev-%d-%s", id, action), action, u, []string{"email", "password"}, at).Message()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPublishCompactsIndentedPayloads(t *testing.T) {
	var out bytes.Buffer
	acked, err := logpublisher.New(&out).Publish(context.Background(), []domain.Message{{Payload: []byte("{\n  \"id\": \"x\"\n}")}})
	if err != nil || acked != 1 {
		t.Fatalf("Publish = %d, %v", acked, err)
	}
	if got := out.String(); got != "{\"id\":\"x\"}\n" {
		t.Errorf("output %q, want one compact line", got)
	}
}

type failingWriter struct{ okWrites int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.okWrites == 0 {
		return 0, errors.New("stdout closed")
	}
	w.okWrites--
	return len(p), nil
}

func TestPublishReportsTheAcknowledgedPrefix(t *testing.T) {
	tests := []struct {
		name      string
		w         *failingWriter
		msgs      []domain.Message
		wantAcked int
	}{
		{"writer fails on the third line", &failingWriter{okWrites: 2}, []domain.Message{message(t, 1, domain.ActionCreate), message(t, 2, domain.ActionCreate), message(t, 3, domain.ActionCreate)}, 2},
		{"payload that is not JSON stops the batch", &failingWriter{okWrites: 10}, []domain.Message{message(t, 1, domain.ActionCreate), {Payload: []byte("{oops")}, message(t, 3, domain.ActionCreate)}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			acked, err := logpublisher.New(tc.w).Publish(context.Background(), tc.msgs)
			if err == nil || acked != tc.wantAcked {
				t.Errorf("Publish = %d, %v; want %d and an error", acked, err, tc.wantAcked)
			}
		})
	}
}

func TestConcurrentPublishNeverInterleavesLines(t *testing.T) {
	var out bytes.Buffer
	p := logpublisher.New(&out)
	msgs := make([]domain.Message, 400)
	for i := range msgs {
		msgs[i] = message(t, int64(i+1), domain.ActionCreate)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := p.Publish(context.Background(), msgs[g*50+i:g*50+i+1]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	sc := bufio.NewScanner(&out)
	n := 0
	for sc.Scan() {
		n++
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("line %d is not JSON (interleaved?): %s", n, sc.Text())
		}
	}
	if n != 400 {
		t.Errorf("%d lines, want 400", n)
	}
}
