package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestClientReadsEveryKindOfAnswer(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/small":
			_, _ = w.Write([]byte(`{"ok":true}`))
		case "/chunked": // larger than net/http's buffer: sent chunked
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(strings.Repeat("x", 64<<10)))
		case "/echo":
			if r.Header.Get("Content-Type") != "application/json" {
				http.Error(w, "no content type", http.StatusUnsupportedMediaType)
				return
			}
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(body)
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = w.Write([]byte("bye"))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/missing":
			http.NotFound(w, r)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	c, err := newClient(srv.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		want               int
		wantErr            string
	}{
		{"small answer", "GET", "/small", nil, 200, ""},
		{"chunked answer", "GET", "/chunked", nil, 200, ""},
		{"request body", "POST", "/echo", []byte(`{"a":1}`), 201, ""},
		{"connection closed by the server", "GET", "/close", nil, 200, ""},
		{"after a closed connection", "GET", "/small", nil, 200, ""},
		{"unexpected status", "GET", "/missing", nil, 200, "status 404, want 200"},
		{"empty answer", "DELETE", "/empty", nil, 204, "empty answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.do(ctx, tc.method, tc.name, tc.path, tc.body, tc.want)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("do: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("do = %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
	// One connection up to /close, a second one after it.
	if n := conns.Load(); n != 2 {
		t.Errorf("server saw %d connections, want 2 (kept alive, replaced once after Connection: close)", n)
	}
}

func TestClientRefusesABadBaseURL(t *testing.T) {
	for _, base := range []string{"https://127.0.0.1:1", "127.0.0.1:80", "http://"} {
		if _, err := newClient(base, 1); err == nil {
			t.Errorf("newClient(%q) accepted it", base)
		}
	}
}
