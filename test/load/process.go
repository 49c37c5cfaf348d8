package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/marketplace/usersvc/test/usersvcproc"
)

// The peak-RSS check measures the real usersvc binary in a process of its
// own (so that its RSS holds neither the load generator nor the broker),
// configured like the in-process service (serviceEnv) with the same
// database and broker.

// serviceBinary returns the binary to run: bin when set, else one built now
// from ./cmd/usersvc into dir.
func serviceBinary(ctx context.Context, bin, dir string) (string, error) {
	if bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("-rss-binary: %w", err)
		}
		return bin, nil
	}
	out, err := usersvcproc.Build(ctx, dir)
	if err != nil {
		return "", fmt.Errorf("build usersvc for the RSS check (or pass -rss-binary): %w", err)
	}
	return out, nil
}

// serviceProcess is a running usersvc binary.
type serviceProcess struct {
	cmd    *exec.Cmd
	url    string
	port   int
	logs   chan struct{} // closed when its log output ends
	waited bool
	err    error
}

// startServiceProcess runs `bin serve` and waits until it serves /readyz.
// Its log lines (standard error; one JSON access line per request, as in
// production) are read and discarded.
func startServiceProcess(ctx context.Context, bin, dbURL, brokers, goMemLimit string) (*serviceProcess, error) {
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range serviceEnv(dbURL, brokers) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if goMemLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+goMemLimit)
	}
	cmd.Stdout = io.Discard // events would go there with EVENT_BUS=log; here they go to Kafka
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	logs, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &serviceProcess{cmd: cmd, logs: make(chan struct{})}
	listening := make(chan string, 1)
	var lastLine string // why it stopped, when it stops before listening
	go func() {
		defer close(p.logs)
		lines := bufio.NewScanner(logs)
		lines.Buffer(make([]byte, 64<<10), 1<<20)
		for lines.Scan() {
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(lines.Bytes(), &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
				listening <- rec.Addr
				break
			}
			lastLine = lines.Text()
		}
		_, _ = io.Copy(io.Discard, logs)
	}()
	select {
	case addr := <-listening:
		p.url = "http://" + addr
		_, port, _ := net.SplitHostPort(addr)
		p.port, _ = strconv.Atoi(port)
	case <-p.logs:
		err = fmt.Errorf("service process stopped before it listened; its last log line: %s", lastLine)
	case <-time.After(time.Minute):
		err = errors.New("service process not listening within a minute")
	}
	if err == nil {
		err = waitReady(ctx, p.url)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = p.stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls /readyz until it answers 200 (a minute at most).
func waitReady(ctx context.Context, base string) error {
	c, err := newClient(base, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	var last error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if last = c.do(ctx, "GET", "readyz", "/readyz", nil, 200); last == nil {
			return nil
		}
	}
	return fmt.Errorf("service process not ready within a minute: %w", last)
}

func (p *serviceProcess) pid() string { return strconv.Itoa(p.cmd.Process.Pid) }

// conns counts the TCP connections established to the service's port now.
func (p *serviceProcess) conns() int { return len(tcpSockets(p.port, tcpEstablished)) }

// stop sends SIGTERM and waits for the process to exit. It is idempotent.
func (p *serviceProcess) stop() error {
	if p.waited {
		return p.err
	}
	p.waited = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.logs
	p.err = p.cmd.Wait()
	return p.err
}

// deployGoMemLimit is the GOMEMLIMIT deploy/ gives the service
// (TestRSSCheckUsesTheDeployedMemoryLimit keeps them equal).
const deployGoMemLimit = "48MiB"
