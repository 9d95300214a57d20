// Package server is the apiserver's HTTP front: gorilla/mux routes for every
// resource in the registry, content negotiation, the REST verbs over the
// etcd store, watch streams, subresources, discovery and metrics.
package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"

	"github.com/kubeish/kubeish/apiserver/auth/authz"
	"github.com/kubeish/kubeish/apiserver/cacher"
	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/apiserver/storage"
)

// Config is what the server needs; everything is passed in.
type Config struct {
	Store      *storage.Store
	Resources  *registry.Set
	Scheme     *runtime.Scheme
	Allocator  *registry.ServiceAllocator
	Logger     *zap.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Ready reports whether the server can serve (etcd answers).
	Ready func(context.Context) error
	// Version is served at /version.
	Version version.Info
	// BookmarkInterval is how often a watch that allows bookmarks gets one.
	BookmarkInterval time.Duration
	// NodeClient proxies pods/log to node agents.
	NodeClient *http.Client
	// NodeScheme is how node agents are reached: "https", or "http" (the
	// default) for development.
	NodeScheme string
	// Metrics, when set, serves the resource metrics API
	// (metrics.k8s.io/v1beta1) and lists it in discovery.
	Metrics MetricsSource
	// Cache, when set, serves lists and watches of the resources it caches
	// from memory (see apiserver/cacher); nil serves all of them from etcd.
	// The caller runs it (Cacher.Run).
	Cache *cacher.Cacher
	// Profiling serves Go's /debug/pprof.
	Profiling bool
}

// Server serves the Kubernetes-compatible API.
type Server struct {
	cfg     Config
	store   *storage.Store
	res     *registry.Set
	codecs  *codecs
	log     *zap.Logger
	metrics *metrics
	router  *mux.Router
	openapi openAPIDocs
	authz   *authz.Authorizer
}

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Resources == nil || cfg.Scheme == nil || cfg.Allocator == nil || cfg.Logger == nil {
		return nil, errors.New("server: store, resources, scheme, allocator and logger are required")
	}
	if cfg.BookmarkInterval == 0 {
		cfg.BookmarkInterval = time.Minute
	}
	if cfg.NodeClient == nil {
		cfg.NodeClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.NodeScheme == "" {
		cfg.NodeScheme = "http"
	}
	if cfg.Registerer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	az, err := authz.New(authz.Config{Store: cfg.Store, Resources: cfg.Resources, Cache: cfg.Cache, Logger: cfg.Logger.Named("authz")})
	if err != nil {
		return nil, err
	}
	s := &Server{
		authz:   az,
		cfg:     cfg,
		store:   cfg.Store,
		res:     cfg.Resources,
		codecs:  newCodecs(cfg.Scheme),
		log:     cfg.Logger,
		metrics: m,
	}
	s.routes()
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.router.ServeHTTP(w, r)
}

func (s *Server) routes() {
	r := mux.NewRouter()
	r.StrictSlash(false)
	// Every non-resource path is authorized as one (verb: the method).
	nr := func(path string, h http.Handler) { r.Handle(path, s.nonResource(h)) }
	nrf := func(path string, h http.HandlerFunc) { nr(path, h) }
	nr("/metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	nrf("/healthz", s.healthz)
	nrf("/livez", s.healthz)
	nrf("/readyz", s.readyz)
	nrf("/version", s.version)
	if s.cfg.Profiling {
		nrf("/debug/pprof/cmdline", pprof.Cmdline)
		nrf("/debug/pprof/profile", pprof.Profile)
		nrf("/debug/pprof/symbol", pprof.Symbol)
		nrf("/debug/pprof/trace", pprof.Trace)
		r.PathPrefix("/debug/pprof/").Handler(s.nonResource(http.HandlerFunc(pprof.Index)))
	}
	nrf("/openapi/v3", s.openAPIIndex)
	r.PathPrefix("/openapi/v3/").Handler(s.nonResource(http.HandlerFunc(s.openAPIGroupVersion)))
	nrf("/api", s.discoveryAPI)
	nrf("/apis", s.discoveryGroups)
	nrf("/api/v1", s.discoveryResources(schema.GroupVersion{Version: "v1"}))
	for _, gv := range s.res.GroupVersions() {
		nrf("/apis/"+gv.Group, s.discoveryGroup(gv.Group))
		nrf("/apis/"+gv.String(), s.discoveryResources(gv))
	}
	nrf("/apis/"+authorizationGV.Group, s.discoveryGroup(authorizationGV.Group))
	nrf("/apis/"+authorizationGV.String(), s.discoveryResources(authorizationGV))
	r.HandleFunc("/apis/"+authorizationGV.String()+"/selfsubjectaccessreviews", s.selfSubjectAccessReview)
	r.HandleFunc("/apis/"+authorizationGV.String()+"/selfsubjectrulesreviews", s.selfSubjectRulesReview)
	if s.cfg.Metrics != nil {
		s.metricsRoutes(r)
	}
	// Namespaced resources first: /namespaces/{ns}/pods must not be taken
	// for the subresource "pods" of namespace {ns}.
	var clusterScoped []*registry.Resource
	for _, res := range s.res.All() {
		if !res.Namespaced {
			clusterScoped = append(clusterScoped, res)
			continue
		}
		base := basePath(res.GroupVersion())
		s.handle(r, res, base+"/namespaces/{namespace}/"+res.Resource, s.collection)
		s.handle(r, res, base+"/namespaces/{namespace}/"+res.Resource+"/{name}", s.item)
		s.handle(r, res, base+"/namespaces/{namespace}/"+res.Resource+"/{name}/{subresource}", s.subresource)
		s.handle(r, res, base+"/"+res.Resource, s.collection)
	}
	for _, res := range clusterScoped {
		base := basePath(res.GroupVersion())
		s.handle(r, res, base+"/"+res.Resource, s.collection)
		s.handle(r, res, base+"/"+res.Resource+"/{name}", s.item)
		s.handle(r, res, base+"/"+res.Resource+"/{name}/{subresource}", s.subresource)
	}
	// An unknown path is authorized as a non-resource path first, so that
	// who may not read it cannot probe what exists either.
	r.NotFoundHandler = s.nonResource(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.instrument(w, req, "", "", func(w http.ResponseWriter) (string, error) {
			return "", apierrors.NewGenericServerResponse(http.StatusNotFound, "", schema.GroupResource{}, "",
				fmt.Sprintf("the server could not find the requested resource (%s %s)", req.Method, req.URL.Path), 0, false)
		})
	}))
	s.router = r
}

func basePath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "/api/" + gv.Version
	}
	return "/apis/" + gv.String()
}

// request is one API call on a resource.
type request struct {
	w         http.ResponseWriter
	r         *http.Request
	res       *registry.Resource
	namespace string
	name      string
	sub       string
	// attrs are the request's authorization attributes, user included
	// once authorized.
	attrs authz.Attributes
}

type handlerFunc func(req *request) (verb string, err error)

func (s *Server) handle(r *mux.Router, res *registry.Resource, path string, h handlerFunc) {
	r.HandleFunc(path, func(w http.ResponseWriter, hr *http.Request) {
		vars := mux.Vars(hr)
		req := &request{r: hr, res: res, namespace: vars["namespace"], name: vars["name"], sub: vars["subresource"]}
		req.attrs = resourceAttributes(req)
		s.instrument(w, hr, res.Resource, req.sub, func(w http.ResponseWriter) (string, error) {
			req.w = w
			if err := s.authorize(hr.Context(), &req.attrs); err != nil {
				return metricVerb(req.attrs.Verb), err
			}
			return h(req)
		})
	})
}

// instrument counts and times one request and writes err as a Status.
func (s *Server) instrument(w http.ResponseWriter, r *http.Request, resource, sub string, h func(http.ResponseWriter) (string, error)) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w}
	verb, err := h(rw)
	if verb == "" {
		verb = r.Method
	}
	if err != nil {
		s.writeError(rw, r, err)
	}
	code := rw.code
	if code == 0 {
		code = http.StatusOK
	}
	s.metrics.observe(verb, resource, sub, code, time.Since(start))
	// A client that went away ends its request with context.Canceled:
	// that is not the server failing, so it is not logged as an error.
	if code >= 500 && !errors.Is(r.Context().Err(), context.Canceled) {
		s.log.Error("request failed", zap.String("verb", verb), zap.String("path", r.URL.Path), zap.Int("code", code), zap.Error(err))
	} else if ce := s.log.Check(zap.DebugLevel, "request"); ce != nil {
		ce.Write(zap.String("verb", verb), zap.String("path", r.URL.Path), zap.Int("code", code), zap.Duration("took", time.Since(start)))
	}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeObject answers with obj in the negotiated format.
func (s *Server) writeObject(w http.ResponseWriter, r *http.Request, code int, obj runtime.Object) {
	acc, err := s.codecs.negotiate(r, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeWith(w, acc.info, code, obj)
}

func (s *Server) writeWith(w http.ResponseWriter, info runtime.SerializerInfo, code int, obj runtime.Object) {
	w.Header().Set("Content-Type", info.MediaType)
	w.WriteHeader(code)
	if err := s.codecs.encode(w, info, obj); err != nil {
		s.log.Error("encoding response", zap.Error(err))
	}
}

// writeError answers err as a Status. Storage errors that reach here
// unmapped are internal errors.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		switch {
		case errors.Is(err, storage.ErrTooLarge):
			err = apierrors.NewRequestEntityTooLargeError(err.Error())
		case errors.Is(err, storage.ErrCompacted):
			err = apierrors.NewResourceExpired("too old resource version: " + err.Error())
		case errors.Is(err, context.Canceled):
			err = apierrors.NewTimeoutError("the request was cancelled", 0)
		case errors.Is(err, context.DeadlineExceeded):
			err = apierrors.NewTimeoutError("the request timed out", 1)
		default:
			err = apierrors.NewInternalError(err)
		}
		errors.As(err, &se)
	}
	status := se.Status()
	status.Kind, status.APIVersion = "Status", "v1"
	if status.Code == 0 {
		status.Code = http.StatusInternalServerError
	}
	info, _ := s.codecs.info(mediaJSON)
	if acc, nerr := s.codecs.negotiate(r, false); nerr == nil {
		info = acc.info
	}
	s.writeWith(w, info, int(status.Code), &status)
}

// statusFor maps a store error for one object to its API error.
func statusFor(res *registry.Resource, name string, err error) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(res.GroupResource(), name)
	case errors.Is(err, storage.ErrAlreadyExists):
		return apierrors.NewAlreadyExists(res.GroupResource(), name)
	case errors.Is(err, storage.ErrConflict):
		return apierrors.NewConflict(res.GroupResource(), name, err)
	}
	return err
}

func warn(w http.ResponseWriter, warnings []string) {
	for _, msg := range warnings {
		w.Header().Add("Warning", fmt.Sprintf(`299 - %q`, strings.ReplaceAll(msg, `"`, `'`)))
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	_, _ = w.Write([]byte("ok"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			http.Error(w, "etcd: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ok"))
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", mediaJSON)
	v := s.cfg.Version
	_ = jsonEncode(w, &v)
}
