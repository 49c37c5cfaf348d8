package app

import (
	"context"
	"fmt"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// DeleteUser removes a user; its event carries the user's id alone.
type DeleteUser struct {
	mutations *Mutations
}

// NewDeleteUser wires the use case.
func NewDeleteUser(mutations *Mutations) *DeleteUser { return &DeleteUser{mutations: mutations} }

// Do deletes user id when pre holds for its current version.
func (uc *DeleteUser) Do(ctx context.Context, id int64, pre domain.Precondition) error {
	_, err := uc.mutations.run(ctx, func(ctx context.Context, tx ports.Tx, _ func() time.Time) (change, error) {
		u, err := tx.LockUser(ctx, id)
		if err != nil {
			return change{}, err
		}
		if err := pre.Check(u.Version); err != nil {
			return change{}, err
		}
		if err := tx.DeleteUser(ctx, id); err != nil {
			return change{}, err
		}
		return change{Action: domain.ActionDelete, User: u}, nil
	})
	if err != nil {
		return fmt.Errorf("delete user %d: %w", id, err)
	}
	return nil
}
