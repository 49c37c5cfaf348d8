package app

import (
	"context"
	"fmt"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// ReplaceUser replaces every writable field of a user (PUT).
type ReplaceUser struct{ updater }

// NewReplaceUser wires the use case.
func NewReplaceUser(rules domain.Rules, users ports.UserReader, hasher ports.PasswordHasher, mutations *Mutations) *ReplaceUser {
	return &ReplaceUser{updater{rules.Complete, users, hasher, mutations}}
}

// PatchUser changes the fields present in its input (PATCH).
type PatchUser struct{ updater }

// NewPatchUser wires the use case.
func NewPatchUser(rules domain.Rules, users ports.UserReader, hasher ports.PasswordHasher, mutations *Mutations) *PatchUser {
	return &PatchUser{updater{rules.Partial, users, hasher, mutations}}
}

// updater is the shared path of PUT and PATCH; they differ only in how the
// input is validated. An update that changes nothing is not a mutation: no
// new version, no event. A password in the input always replaces the hash
// and counts as a change: comparing it with the stored one would let any
// caller test guesses (by the answer, the ETag or the time taken).
type updater struct {
	validate  func(domain.Input) (domain.Input, error)
	users     ports.UserReader
	hasher    ports.PasswordHasher
	mutations *Mutations
}

// Do applies the input to user id when pre holds for its current version,
// and returns the user as it now is.
func (uc *updater) Do(ctx context.Context, id int64, in domain.Input, pre domain.Precondition) (domain.User, error) {
	in, err := uc.validate(in)
	if err != nil {
		return domain.User{}, err
	}
	newHash, err := uc.hashPassword(ctx, id, in.Password, pre)
	if err != nil {
		return domain.User{}, fmt.Errorf("update user %d: %w", id, err)
	}
	c, err := uc.mutations.run(ctx, func(ctx context.Context, tx ports.Tx, now func() time.Time) (change, error) {
		u, err := tx.LockUser(ctx, id)
		if err != nil {
			return change{}, err
		}
		// Checked again under the lock: the version may have moved since
		// hashPassword's check.
		if err := pre.Check(u.Version); err != nil {
			return change{}, err
		}
		changed := u.ApplyProfile(in)
		if newHash != "" {
			u.PasswordHash = newHash
			changed = append(changed, domain.FieldPassword)
		}
		if len(changed) == 0 {
			return change{User: u}, nil
		}
		u.Touch(now())
		if err := tx.UpdateUser(ctx, u); err != nil {
			return change{}, err
		}
		return change{Action: domain.ActionUpdate, User: u, Changed: sortedFields(changed)}, nil
	})
	if err != nil {
		return domain.User{}, fmt.Errorf("update user %d: %w", id, err)
	}
	return c.User, nil
}

// hashPassword hashes a new password ("" when there is none) before the
// transaction, so that argon2 never runs while a row is locked, but only
// once the user exists and the precondition holds: a refused write costs
// no hashing, and its answer cannot depend on the password.
func (uc *updater) hashPassword(ctx context.Context, id int64, password *string, pre domain.Precondition) (string, error) {
	if password == nil {
		return "", nil
	}
	u, err := uc.users.GetUser(ctx, id)
	if err != nil {
		return "", err
	}
	if err := pre.Check(u.Version); err != nil {
		return "", err
	}
	hash, err := uc.hasher.Hash(ctx, *password)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return hash, nil
}
