package syncbuf

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestConcurrentWritesKeepEveryLine(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d\n", i) })
	}
	wg.Wait()
	lines := b.Lines()
	if len(lines) != 50 {
		t.Fatalf("%d lines, want 50", len(lines))
	}
	for i := range 50 {
		if !slices.Contains(lines, fmt.Sprintf("line %d", i)) {
			t.Errorf("line %d missing", i)
		}
	}
	b.Reset()
	if b.Lines() != nil || b.String() != "" {
		t.Errorf("after Reset: %q", b.String())
	}
}
