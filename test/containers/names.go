package containers

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

func randomHex(nBytes int) string {
	b := make([]byte, nBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// uniqueName builds prefix + a readable form of the test name + a random
// suffix, at most max bytes, using only [a-z0-9] and sep: valid as a MySQL
// database name and as a Kafka topic name, and traceable to its test.
func uniqueName(prefix, testName string, max int, sep byte) string {
	suffix := string(sep) + randomHex(4)
	var b strings.Builder
	b.WriteString(prefix)
	lastSep := true
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= max-len(suffix) {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			lastSep = false
		} else if !lastSep {
			b.WriteByte(sep)
			lastSep = true
		}
	}
	name := strings.TrimRight(b.String(), string(sep))
	return name + suffix
}
