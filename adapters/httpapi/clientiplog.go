package httpapi

import (
	"fmt"
	"net/netip"
)

// ClientIPLog says how much of a client's address the access log keeps
// (LOG_CLIENT_IP): an address is personal data, and the network it comes
// from is usually enough to investigate abuse.
type ClientIPLog string

// LOG_CLIENT_IP values. The zero value means ClientIPTruncated.
const (
	ClientIPFull      ClientIPLog = "full"
	ClientIPTruncated ClientIPLog = "truncated" // IPv4 /24, IPv6 /48
	ClientIPNone      ClientIPLog = "none"
)

// ClientIPLogs lists the accepted values.
var ClientIPLogs = []string{string(ClientIPFull), string(ClientIPTruncated), string(ClientIPNone)}

// ParseClientIPLog reads a LOG_CLIENT_IP value; empty means truncated.
func ParseClientIPLog(v string) (ClientIPLog, error) {
	switch m := ClientIPLog(v); m {
	case "":
		return ClientIPTruncated, nil
	case ClientIPFull, ClientIPTruncated, ClientIPNone:
		return m, nil
	}
	return "", fmt.Errorf("must be one of full, truncated, none")
}

// Prefix lengths the truncated mode keeps.
const (
	truncatedBitsIPv4 = 24
	truncatedBitsIPv6 = 48
)

// show renders a for the access log, and reports false when the line
// carries no client address at all.
func (m ClientIPLog) show(a netip.Addr) (string, bool) {
	switch m {
	case ClientIPNone:
		return "", false
	case ClientIPFull:
		return addrString(a), true
	}
	if !a.IsValid() {
		return "", true
	}
	a = a.Unmap().WithZone("")
	bits := truncatedBitsIPv6
	if a.Is4() {
		bits = truncatedBitsIPv4
	}
	p, err := a.Prefix(bits)
	if err != nil { // cannot happen: bits fits both families
		return "", true
	}
	return p.String(), true
}
