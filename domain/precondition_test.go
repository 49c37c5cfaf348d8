package domain_test

import (
	"errors"
	"testing"

	"github.com/marketplace/usersvc/domain"
)

func TestPrecondition(t *testing.T) {
	tests := []struct {
		name    string
		pre     domain.Precondition
		version int64
		holds   bool
	}{
		{"zero value holds for any version", domain.Precondition{}, 42, true},
		{"matching version", domain.MatchVersions(3), 3, true},
		{"other version", domain.MatchVersions(3), 4, false},
		{"one of several", domain.MatchVersions(1, 5, 9), 5, true},
		{"none of several", domain.MatchVersions(1, 5, 9), 2, false},
		{"no version never holds", domain.MatchVersions(), 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.pre.Check(tc.version)
			if tc.holds != (err == nil) {
				t.Fatalf("Check(%d) = %v, want holds=%v", tc.version, err, tc.holds)
			}
			if err != nil && !errors.Is(err, domain.ErrPreconditionFailed) {
				t.Errorf("error %v is not ErrPreconditionFailed", err)
			}
		})
	}
}
