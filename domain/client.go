package domain

import "net/netip"

// IPv6BlockBits is how much of an IPv6 address names one client: a /64 is
// one subnet, and one host can use every address in it.
const IPv6BlockBits = 64

// ClientBlock is the block of addresses that counts as one client for
// rate limits and geolocation: the address itself for IPv4, its /64 for
// IPv6. Without it, one host would get a fresh allowance (and cost a
// fresh provider call) per address of its /64. Mapped and zoned addresses
// count as their plain forms; an invalid address yields the zero Prefix.
func ClientBlock(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return netip.Prefix{}
	}
	bits := addr.BitLen()
	if addr.Is6() {
		bits = IPv6BlockBits
	}
	p, _ := addr.Prefix(bits)
	return p
}
