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
// new version, no event.
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
	pw, err := uc.preparePassword(ctx, id, in.Password)
	if err != nil {
		return domain.User{}, err
	}
	c, err := uc.mutations.run(ctx, func(ctx context.Context, tx ports.Tx, now func() time.Time) (change, error) {
		u, err := tx.LockUser(ctx, id)
		if err != nil {
			return change{}, err
		}
		if err := pre.Check(u.Version); err != nil {
			return change{}, err
		}
		changed := u.ApplyProfile(in)
		if in.Password != nil {
			newHash, err := pw.hashFor(ctx, uc.hasher, u.PasswordHash, *in.Password)
			if err != nil {
				return change{}, err
			}
			if newHash != "" {
				u.PasswordHash = newHash
				changed = append(changed, domain.FieldPassword)
			}
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

// passwordPlan is the password work done before the transaction, so that
// argon2 never runs while a row is locked: whether the new password equals
// the stored one, and if not, its hash.
type passwordPlan struct {
	checkedHash string // the stored hash the plan was made against
	newHash     string // "" when the password is unchanged
}

func (uc *updater) preparePassword(ctx context.Context, id int64, password *string) (passwordPlan, error) {
	if password == nil {
		return passwordPlan{}, nil
	}
	u, err := uc.users.GetUser(ctx, id)
	if err != nil {
		return passwordPlan{}, fmt.Errorf("update user %d: %w", id, err)
	}
	return planPassword(ctx, uc.hasher, u.PasswordHash, *password)
}

func planPassword(ctx context.Context, hasher ports.PasswordHasher, stored, password string) (passwordPlan, error) {
	same, err := hasher.Verify(ctx, stored, password)
	if err != nil {
		return passwordPlan{}, fmt.Errorf("verify password: %w", err)
	}
	plan := passwordPlan{checkedHash: stored}
	if !same {
		if plan.newHash, err = hasher.Hash(ctx, password); err != nil {
			return passwordPlan{}, fmt.Errorf("hash password: %w", err)
		}
	}
	return plan, nil
}

// hashFor returns the hash to store ("" for no change) given the hash found
// under lock; a concurrent password change since the plan means planning again.
func (p passwordPlan) hashFor(ctx context.Context, hasher ports.PasswordHasher, stored, password string) (string, error) {
	if stored != p.checkedHash {
		fresh, err := planPassword(ctx, hasher, stored, password)
		if err != nil {
			return "", err
		}
		p = fresh
	}
	return p.newHash, nil
}
