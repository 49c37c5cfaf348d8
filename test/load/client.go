package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// client is the load generator's HTTP/1.1 client: one keep-alive
// connection per worker, the request written with one system call and the
// answer parsed by net/http's own reader (http.ReadResponse: status line,
// headers, Content-Length or chunked body).
//
// It is not http.Client because the generator shares the machine's two
// cores with the service and the database, and http.Transport's machinery
// (two goroutines per connection, channels between them, a request and a
// header map built per call) took a quarter of the CPU in the get
// workload's profile. A client on another machine would cost the service
// nothing; this one keeps the share it takes small.
type client struct {
	addr    string // host:port dialled
	host    string // Host header
	timeout time.Duration
	idle    chan *clientConn
	dialer  net.Dialer
}

// clientConn is one keep-alive connection and its buffers.
type clientConn struct {
	nc  net.Conn
	br  *bufio.Reader
	req bytes.Buffer
}

// requestTimeout bounds one request, as http.Client.Timeout did.
const requestTimeout = time.Minute

func newClient(base string, conns int) (*client, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("load client: base URL %q is not http://host[:port]", base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &client{addr: addr, host: u.Host, timeout: requestTimeout, idle: make(chan *clientConn, conns)}, nil
}

// base is the URL the client was made for.
func (c *client) base() string { return "http://" + c.host }

// Close closes the idle connections.
func (c *client) Close() {
	for {
		select {
		case cc := <-c.idle:
			_ = cc.nc.Close()
		default:
			return
		}
	}
}

// get takes an idle connection or dials a new one.
func (c *client) get(ctx context.Context) (*clientConn, error) {
	select {
	case cc := <-c.idle:
		return cc, nil
	default:
	}
	nc, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	return &clientConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10)}, nil
}

// put keeps a connection for the next request (or closes it when the pool
// is full).
func (c *client) put(cc *clientConn) {
	select {
	case c.idle <- cc:
	default:
		_ = cc.nc.Close()
	}
}

// do sends one request and reads the whole answer. route names the request
// in error messages.
func (c *client) do(ctx context.Context, method, route, path string, body []byte, want int) error {
	return c.doWith(ctx, method, route, path, "", body, want)
}

// doWith is do with extra header lines (each ending in "\r\n"), written as
// they are: a caller's bearer token or an If-Match.
func (c *client) doWith(ctx context.Context, method, route, path, header string, body []byte, want int) error {
	return c.doInto(ctx, method, route, path, header, body, want, io.Discard)
}

// doInto is doWith with the answer's body copied to dst (a cursor walk
// reads its links).
func (c *client) doInto(ctx context.Context, method, route, path, header string, body []byte, want int, dst io.Writer) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", method, route, err)
	}
	cc, err := c.get(ctx)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, route, err)
	}
	status, n, keep, err := c.exchange(ctx, cc, method, path, header, body, dst)
	if err != nil || !keep {
		_ = cc.nc.Close()
	} else {
		c.put(cc)
	}
	switch {
	case err != nil:
		return fmt.Errorf("%s %s: %w", method, route, err)
	case status != want:
		return fmt.Errorf("%s %s: status %d, want %d", method, route, status, want)
	case n == 0:
		return fmt.Errorf("%s %s: empty answer", method, route)
	}
	return nil
}

// exchange writes the request and reads the answer on cc. keep reports
// whether the connection may carry another request.
func (c *client) exchange(ctx context.Context, cc *clientConn, method, path, header string, body []byte, dst io.Writer) (status int, n int64, keep bool, err error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := cc.nc.SetDeadline(deadline); err != nil {
		return 0, 0, false, err
	}
	b := &cc.req
	b.Reset()
	b.WriteString(method)
	b.WriteByte(' ')
	b.WriteString(path)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(c.host)
	b.WriteString("\r\nUser-Agent: usersvc-load\r\n")
	b.WriteString(header)
	if body != nil {
		b.WriteString("Content-Type: application/json\r\nContent-Length: ")
		b.WriteString(strconv.Itoa(len(body)))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	if _, err := cc.nc.Write(b.Bytes()); err != nil {
		return 0, 0, false, fmt.Errorf("write request: %w", err)
	}
	res, err := http.ReadResponse(cc.br, nil)
	if err != nil {
		return 0, 0, false, fmt.Errorf("read answer: %w", err)
	}
	n, err = io.Copy(dst, res.Body)
	_ = res.Body.Close()
	if err != nil {
		return 0, 0, false, fmt.Errorf("read answer: %w", err)
	}
	if cc.br.Buffered() > 0 {
		return 0, 0, false, errors.New("read answer: bytes after the body")
	}
	return res.StatusCode, n, !res.Close, nil
}
