package domain

// Precondition is an If-Match condition on a user's version. The zero value
// holds for any version.
type Precondition struct {
	set      bool
	versions []int64
}

// MatchVersions builds a condition that holds only for the given versions;
// with none it never holds (an If-Match whose tags name no version of ours).
func MatchVersions(versions ...int64) Precondition {
	return Precondition{set: true, versions: versions}
}

// Check returns ErrPreconditionFailed unless the condition holds for version.
func (p Precondition) Check(version int64) error {
	if !p.set {
		return nil
	}
	for _, v := range p.versions {
		if v == version {
			return nil
		}
	}
	return ErrPreconditionFailed
}
