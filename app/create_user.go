package app

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/ports"
)

// CreateUser registers a user from an allowed country.
type CreateUser struct {
	rules     domain.Rules
	geo       ports.Geolocator
	policy    domain.CountryPolicy
	hasher    ports.PasswordHasher
	mutations *Mutations
}

// NewCreateUser wires the use case.
func NewCreateUser(rules domain.Rules, geo ports.Geolocator, policy domain.CountryPolicy, hasher ports.PasswordHasher, mutations *Mutations) *CreateUser {
	return &CreateUser{rules: rules, geo: geo, policy: policy, hasher: hasher, mutations: mutations}
}

// Do validates the input, checks where the client is, hashes the password
// and stores the user with its "create" event. The order of the checks is
// part of the API contract: 400, then 403/503, then a taken email (400).
func (uc *CreateUser) Do(ctx context.Context, in domain.Input, client netip.Addr) (domain.User, error) {
	in, err := uc.rules.Complete(in)
	if err != nil {
		return domain.User{}, err
	}
	loc, err := uc.geo.Locate(ctx, client)
	if err != nil {
		if !errors.Is(err, domain.ErrUnavailable) {
			err = domain.Unavailable(domain.DependencyGeolocation, err)
		}
		return domain.User{}, fmt.Errorf("locate the client: %w", err)
	}
	if err := uc.policy.Check(loc); err != nil {
		return domain.User{}, err
	}
	hash, err := uc.hasher.Hash(ctx, *in.Password)
	if err != nil {
		return domain.User{}, fmt.Errorf("hash password: %w", err)
	}
	c, err := uc.mutations.run(ctx, func(ctx context.Context, tx ports.Tx, now func() time.Time) (change, error) {
		u := domain.NewUser(in, hash, now())
		u.Country = loc.CountryCode // the policy accepted it: a known country
		if err := tx.InsertUser(ctx, &u); err != nil {
			return change{}, err
		}
		return change{Action: domain.ActionCreate, User: u}, nil
	})
	if err != nil {
		return domain.User{}, fmt.Errorf("create user: %w", err)
	}
	return c.User, nil
}
