package domain_test

import (
	"testing"

	"github.com/marketplace/usersvc/domain"
)

func TestListQueryOffset(t *testing.T) {
	tests := []struct {
		page, size, want int
	}{
		{1, 10, 0},
		{2, 10, 10},
		{3, 25, 50},
		{7, 100, 600},
	}
	for _, tc := range tests {
		if got := (domain.ListQuery{Page: tc.page, PageSize: tc.size}).Offset(); got != tc.want {
			t.Errorf("page %d size %d: Offset = %d, want %d", tc.page, tc.size, got, tc.want)
		}
	}
}

func TestIsSortable(t *testing.T) {
	tests := map[string]bool{
		"id": true, "first_name": true, "last_name": true, "email": true, "created_at": true,
		"password": false, "address": false, "updated_at": false, "-id": false, "ID": false, "": false,
	}
	for name, want := range tests {
		if got := domain.IsSortable(name); got != want {
			t.Errorf("IsSortable(%q) = %v, want %v", name, got, want)
		}
	}
}
