package domain

import (
	"net/netip"
	"testing"
)

func TestClientBlock(t *testing.T) {
	for _, tc := range []struct {
		name, addr, want string
	}{
		{"IPv4 is its own block", "198.51.100.7", "198.51.100.7/32"},
		{"IPv6 counts by its /64", "2001:db8:c4:1:aaaa:bbbb:cccc:dddd", "2001:db8:c4:1::/64"},
		{"another host of the same /64", "2001:db8:c4:1::1", "2001:db8:c4:1::/64"},
		{"the next /64 is another client", "2001:db8:c4:2::1", "2001:db8:c4:2::/64"},
		{"IPv4-mapped counts as IPv4", "::ffff:198.51.100.7", "198.51.100.7/32"},
		{"zone dropped", "fe80::1%eth0", "fe80::/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClientBlock(netip.MustParseAddr(tc.addr)); got.String() != tc.want {
				t.Errorf("ClientBlock(%s) = %s, want %s", tc.addr, got, tc.want)
			}
		})
	}
	if got := ClientBlock(netip.Addr{}); got.IsValid() {
		t.Errorf("ClientBlock(invalid) = %s, want the zero prefix", got)
	}
}
