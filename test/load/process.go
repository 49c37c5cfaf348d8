package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The peak-RSS check runs the service in a process of its own: this
// program, started again with serviceProcessEnv set, wires the service
// exactly as in the main run (startService) and serves until its standard
// input closes.
const serviceProcessEnv = "USERSVC_LOAD_SERVICE_PROCESS"

// serviceProcessMain is the service process: it prints "READY <url>", serves
// until stdin reaches EOF, then prints "PEAKCONNS <n>" and shuts down.
func serviceProcessMain() int {
	ctx := context.Background()
	svc, err := startService(ctx, serviceEnv(os.Getenv("DATABASE_URL"), os.Getenv("KAFKA_BROKERS")), os.Getenv(serviceProcessEnv) == "cheap-hash")
	if err != nil {
		fmt.Fprintln(os.Stderr, "load service process:", err)
		return 1
	}
	fmt.Println("READY", svc.URL)
	_, _ = io.Copy(io.Discard, os.Stdin)
	fmt.Println("PEAKCONNS", svc.conns.peak.Load())
	svc.Close()
	return 0
}

// serviceProcess is a running service process.
type serviceProcess struct {
	cmd    *exec.Cmd
	url    string
	stdin  io.Closer
	lines  *bufio.Scanner
	waited bool
	conns  int64
	err    error
}

func startServiceProcess(ctx context.Context, dbURL, brokers, goMemLimit string, cheapHash bool) (*serviceProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	mode := "1"
	if cheapHash {
		mode = "cheap-hash"
	}
	cmd.Env = append(os.Environ(), serviceProcessEnv+"="+mode, "DATABASE_URL="+dbURL, "KAFKA_BROKERS="+brokers)
	if goMemLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+goMemLimit)
	}
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 10 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start service process: %w", err)
	}
	p := &serviceProcess{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	ready := make(chan error, 1)
	go func() {
		if !p.lines.Scan() {
			ready <- errors.New("service process exited before it was ready")
			return
		}
		url, ok := strings.CutPrefix(p.lines.Text(), "READY ")
		if !ok {
			ready <- fmt.Errorf("service process said %q", p.lines.Text())
			return
		}
		p.url = url
		ready <- nil
	}()
	select {
	case err = <-ready:
	case <-time.After(time.Minute):
		err = errors.New("service process not ready within a minute")
	}
	if err != nil {
		_ = cmd.Process.Kill()
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *serviceProcess) pid() string { return strconv.Itoa(p.cmd.Process.Pid) }

// stop closes the process's stdin, reads its connection peak and waits for
// it to exit. It is idempotent.
func (p *serviceProcess) stop() (int64, error) {
	if p.waited {
		return p.conns, p.err
	}
	p.waited = true
	_ = p.stdin.Close()
	for p.lines.Scan() {
		if v, ok := strings.CutPrefix(p.lines.Text(), "PEAKCONNS "); ok {
			p.conns, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	p.err = p.cmd.Wait()
	return p.conns, p.err
}
