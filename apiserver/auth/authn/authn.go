// Package authn finds who made an API request: a client certificate
// verified against the client CA (CommonName = user, Organizations =
// groups) or a bearer token from a static token file, as Kubernetes'
// authenticators do. A request that carries no credentials is anonymous;
// the caller decides which paths an anonymous request may reach.
//
// Neither tokens nor keys are ever part of an error or a log line.
package authn

import (
	"errors"
	"net/http"
	"slices"

	"github.com/kubeish/kubeish/apiserver/auth/user"
)

// Authenticator finds the user a request's credentials name.
//
// It answers ok=true with the user when the request carries valid
// credentials of its kind; ok=false and a nil error when it carries none;
// and an error saying why when it carries credentials that are not valid
// (an expired certificate, an unknown token). The error never contains the
// credentials themselves.
type Authenticator interface {
	AuthenticateRequest(r *http.Request) (u *user.Info, ok bool, err error)
}

// Func adapts a function to an Authenticator.
type Func func(r *http.Request) (*user.Info, bool, error)

// AuthenticateRequest calls f.
func (f Func) AuthenticateRequest(r *http.Request) (*user.Info, bool, error) { return f(r) }

// Union tries each authenticator in order: the first that finds a user
// wins, so a valid client certificate authenticates a request even when
// its token is wrong. When none finds one, the errors of those that
// refused credentials are returned together (a bad token with no valid
// certificate is a failure, not an anonymous request). Every user found
// gets the group system:authenticated.
func Union(auths ...Authenticator) Authenticator {
	return Func(func(r *http.Request) (*user.Info, bool, error) {
		var errs []error
		for _, a := range auths {
			if a == nil {
				continue
			}
			u, ok, err := a.AuthenticateRequest(r)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				return withAuthenticatedGroup(u), true, nil
			}
		}
		return nil, false, errors.Join(errs...)
	})
}

// Anonymous is the user of a request without credentials.
func Anonymous() *user.Info {
	return &user.Info{Name: user.Anonymous, Groups: []string{user.AllUnauthenticated}}
}

func withAuthenticatedGroup(u *user.Info) *user.Info {
	out := *u
	out.Groups = slices.Clone(u.Groups)
	if !slices.Contains(out.Groups, user.AllAuthenticated) {
		out.Groups = append(out.Groups, user.AllAuthenticated)
	}
	return &out
}
