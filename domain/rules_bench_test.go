package domain_test

import (
	"testing"
	"time"

	"github.com/marketplace/usersvc/domain"
)

// Hot paths of the domain: validating a create (Complete) and a patch
// (Partial), encoding the event every mutation writes to the outbox, and
// the timestamps of every user an answer shows (two per user of a page).
//
//	go test -run '^$' -bench . -benchmem ./domain

func BenchmarkRules(b *testing.B) {
	rules := domain.NewRules(0)
	complete := domain.Input{
		FirstName: ptr("  Serge "), LastName: ptr("Karamazov"), Email: ptr("Serge.Karamazov@Example.CH"),
		Password: ptr("myP@ssW0ord52"), Address: ptr("Bahnhofstrasse 1, 8001 Zürich"),
	}
	invalid := domain.Input{FirstName: ptr(""), LastName: ptr("Karamazov"), Email: ptr("not an email"), Password: ptr("short")}
	cases := []struct {
		name string
		run  func(domain.Input) (domain.Input, error)
		in   domain.Input
		ok   bool
	}{
		{"Complete/valid", rules.Complete, complete, true},
		{"Complete/three field errors", rules.Complete, invalid, false},
		{"Partial/address", rules.Partial, domain.Input{Address: ptr("Rue du Rhône 2, 1204 Genève")}, true},
		{"Partial/email", rules.Partial, domain.Input{Email: ptr("New.Address@Example.CH")}, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.run(c.in); (err == nil) != c.ok {
					b.Fatalf("error %v, want ok=%v", err, c.ok)
				}
			}
		})
	}
}

func BenchmarkValidEmail(b *testing.B) {
	for b.Loop() {
		if !domain.ValidEmail("serge.karamazov@mail.example.ch") {
			b.Fatal("valid address refused")
		}
	}
}

func BenchmarkEventMessage(b *testing.B) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	u := domain.User{
		ID: 123456, Email: "serge.karamazov@example.ch", FirstName: "Serge", LastName: "Karamazov",
		Address: "Bahnhofstrasse 1, 8001 Zürich", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		Version: 2, CreatedAt: at.Add(-time.Hour), UpdatedAt: at,
	}
	changed := []string{domain.FieldAddress}
	for b.Loop() {
		m, err := domain.NewEvent("0190f5a4-0000-7000-8000-000000000000", domain.ActionUpdate, u, changed, at).Message()
		if err != nil || len(m.Payload) == 0 {
			b.Fatalf("Message: %v", err)
		}
	}
}

// BenchmarkAppendTime compares AppendTime with the AppendFormat call it
// replaced (the same bytes: TestAppendTimeMatchesAppendFormat).
func BenchmarkAppendTime(b *testing.B) {
	t := time.Date(2026, 12, 4, 19, 25, 1, 123456789, time.UTC)
	buf := make([]byte, 0, 32)
	b.Run("AppendTime", func(b *testing.B) {
		for b.Loop() {
			buf = domain.AppendTime(buf[:0], t)
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			buf = t.UTC().AppendFormat(buf[:0], domain.TimeLayout)
		}
	})
}
