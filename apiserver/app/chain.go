package app

import "net/http"

// handlerChain wraps the API's routes in the filters every request passes,
// outermost first: the body limit, the request timeout, authentication
// (the user goes into the context), the in-flight limit, the per-user
// watch limit; authorization runs in the routes, which know the resource.
func (a *APIServer) handlerChain(api http.Handler) http.Handler {
	limits := newLimitMetrics(a.Server.Registerer())
	h := api
	h = a.withWatchLimit(h, limits)
	h = a.withMaxInFlight(h, limits)
	h = a.withAuthentication(h)
	h = a.withTimeout(h)
	return http.MaxBytesHandler(h, MaxRequestBytes+1)
}
