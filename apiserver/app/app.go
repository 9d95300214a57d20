// Package app wires the apiserver together: flags, etcd (embedded or
// external), the store, the HTTP server, bootstrap objects, compaction and
// graceful shutdown. main.go and pkg/testenv both start it through Start.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/version"

	"github.com/kubeish/kubeish/apiserver/cacher"
	"github.com/kubeish/kubeish/apiserver/metricsapi"
	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/apiserver/server"
	"github.com/kubeish/kubeish/apiserver/storage"
	"github.com/kubeish/kubeish/pkg/logging"
)

// Version is what /version reports; set at build time with -ldflags.
var Version = "v1.37.0-kubeish"

// MaxRequestBytes is etcd's request size limit the embedded etcd runs with;
// the apiserver refuses larger bodies before they reach it.
const MaxRequestBytes = 3 << 20

// Options are the apiserver's flags.
type Options struct {
	// ListenAddress is the HTTPS listener.
	ListenAddress string
	// InsecureListenAddress, when set, is a plain-HTTP listener on a
	// loopback address where every request is system:unsecured (a member
	// of system:masters): development only.
	InsecureListenAddress string
	AdvertiseAddress      string
	DataDir               string
	EtcdServers           []string
	EtcdClientURL         string
	EtcdPeerURL           string
	ServiceClusterRange   string
	ServiceNodePorts      string
	CompactInterval       time.Duration
	BookmarkInterval      time.Duration
	WatchCache            bool
	ShutdownTimeout       time.Duration
	// MetricResolution is how often nodes' /stats/summary is scraped for
	// the resource metrics API; 0 turns the API off.
	MetricResolution time.Duration
	// MetricNodeTimeout bounds one node's scrape.
	MetricNodeTimeout time.Duration
	// Profiling serves Go's /debug/pprof (to authorized users).
	Profiling bool
	// Security: TLS, authentication, authorization (security.go).
	Security SecurityOptions
	// Limits against abuse: in-flight requests, watches per user, request
	// timeouts (limits.go).
	Limits LimitOptions
	// EncryptionKeyFile, when set, makes Secrets encrypted at rest
	// (encryption.go).
	EncryptionKeyFile string
	Log               logging.Options

	// SummaryGetter replaces the HTTP reads of nodes' /stats/summary
	// (tests feed fake usage through it). Not a flag.
	SummaryGetter metricsapi.SummaryGetter
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		ListenAddress:       "0.0.0.0:6443",
		DataDir:             "/var/lib/kubeish/apiserver",
		EtcdClientURL:       "http://127.0.0.1:2379",
		EtcdPeerURL:         "http://127.0.0.1:2380",
		ServiceClusterRange: "10.96.0.0/16",
		ServiceNodePorts:    "30000-32767",
		CompactInterval:     5 * time.Minute,
		BookmarkInterval:    time.Minute,
		WatchCache:          true,
		ShutdownTimeout:     10 * time.Second,
		MetricResolution:    15 * time.Second,
		MetricNodeTimeout:   10 * time.Second,
		Limits:              NewLimitOptions(),
	}
}

// AddFlags registers the options on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ListenAddress, "listen-address", o.ListenAddress, "host:port to serve the API on over HTTPS (port 0 picks a free one)")
	fs.StringVar(&o.InsecureListenAddress, "insecure-listen-address", o.InsecureListenAddress, "loopback host:port to also serve the API on over plain HTTP without authentication, every request as system:unsecured in system:masters (development only; default off)")
	fs.StringVar(&o.AdvertiseAddress, "advertise-address", o.AdvertiseAddress, "IP published in the Endpoints of default/kubernetes and put in the serving certificate (default: the listen address's IP, or 127.0.0.1 when it is unspecified)")
	fs.StringVar(&o.DataDir, "data-dir", o.DataDir, "directory of the embedded etcd's data (etcd/) and, by default, of --cert-dir (pki/)")
	fs.StringSliceVar(&o.EtcdServers, "etcd-servers", o.EtcdServers, "client URLs of an existing etcd cluster; when empty an embedded etcd is started in --data-dir")
	fs.StringVar(&o.EtcdClientURL, "etcd-listen-client-url", o.EtcdClientURL, "client URL of the embedded etcd (port 0 picks a free one)")
	fs.StringVar(&o.EtcdPeerURL, "etcd-listen-peer-url", o.EtcdPeerURL, "peer URL of the embedded etcd (port 0 picks a free one)")
	fs.StringVar(&o.ServiceClusterRange, "service-cluster-ip-range", o.ServiceClusterRange, "IPv4 CIDR from which Services get their ClusterIP")
	fs.StringVar(&o.ServiceNodePorts, "service-node-port-range", o.ServiceNodePorts, "port range FROM-TO for NodePort Services")
	fs.DurationVar(&o.CompactInterval, "etcd-compaction-interval", o.CompactInterval, "how often etcd history is compacted (keeping one interval of history); 0 disables")
	fs.DurationVar(&o.BookmarkInterval, "watch-bookmark-interval", o.BookmarkInterval, "how often watches that allow bookmarks receive one")
	fs.BoolVar(&o.WatchCache, "watch-cache", o.WatchCache, "serve lists and watches from an in-memory cache kept current by one etcd watch per resource; off serves every list and watch from etcd")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "how long in-flight requests may take to finish on shutdown")
	fs.DurationVar(&o.MetricResolution, "metric-resolution", o.MetricResolution, "how often every Ready node's /stats/summary is scraped for the resource metrics API (metrics.k8s.io, kubectl top, the autoscaler); 0 turns the API off")
	fs.DurationVar(&o.MetricNodeTimeout, "metric-node-timeout", o.MetricNodeTimeout, "how long one node's /stats/summary may take before the node is left out of a round (at most --metric-resolution)")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "serve Go's /debug/pprof (to users allowed the non-resource URL /debug/pprof/*)")
	fs.StringVar(&o.EncryptionKeyFile, "encryption-key-file", o.EncryptionKeyFile, "file of AES-GCM keys; when set, Secrets are stored encrypted in etcd")
	o.Security.AddFlags(fs)
	o.Limits.AddFlags(fs)
	o.Log.AddFlags(fs)
}

// Validate checks the options that do not need any I/O.
func (o *Options) Validate() error {
	if err := o.Limits.Validate(); err != nil {
		return err
	}
	if _, err := splitListenAddress("--listen-address", o.ListenAddress); err != nil {
		return err
	}
	if o.InsecureListenAddress != "" {
		host, err := splitListenAddress("--insecure-listen-address", o.InsecureListenAddress)
		if err != nil {
			return err
		}
		if !isLoopback(host) {
			return fmt.Errorf("--insecure-listen-address %q is not a loopback address: every request on it is system:masters without authentication, so it may only listen on 127.0.0.1, ::1 or localhost", o.InsecureListenAddress)
		}
	}
	if err := o.Security.Validate(); err != nil {
		return err
	}
	if o.AdvertiseAddress != "" && net.ParseIP(o.AdvertiseAddress) == nil {
		return fmt.Errorf("--advertise-address %q is not an IP", o.AdvertiseAddress)
	}
	if _, err := registry.NewServiceAllocator(o.ServiceClusterRange, o.ServiceNodePorts); err != nil {
		return err
	}
	if o.MetricResolution < 0 || o.MetricNodeTimeout < 0 {
		return fmt.Errorf("--metric-resolution %s and --metric-node-timeout %s may not be negative", o.MetricResolution, o.MetricNodeTimeout)
	}
	for _, s := range o.EtcdServers {
		if u, err := url.Parse(s); err != nil || u.Host == "" {
			return fmt.Errorf("--etcd-servers: %q is not a URL like http://10.0.0.1:2379", s)
		}
	}
	return nil
}

// splitListenAddress checks a host:port flag and returns its host.
func splitListenAddress(flag, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("%s %q: bad port", flag, addr)
	}
	return host, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// APIServer is a running apiserver.
type APIServer struct {
	// URL is where the API is served over HTTPS, e.g.
	// https://127.0.0.1:6443 (127.0.0.1 when the listen IP is unspecified).
	URL string
	// InsecureURL is the plain-HTTP listener, e.g. http://127.0.0.1:8080;
	// empty when --insecure-listen-address is off.
	InsecureURL string
	// CertDir is where the cluster CA and generated certificates are.
	CertDir string
	// Etcd is the embedded etcd, nil with --etcd-servers.
	Etcd *embed.Etcd
	// EtcdClient is the apiserver's etcd client.
	EtcdClient *clientv3.Client
	// EtcdEndpoints are the client URLs of the etcd in use.
	EtcdEndpoints []string
	// Server is the HTTP handler.
	Server *server.Server
	// Metrics scrapes the nodes for the resource metrics API; nil when
	// --metric-resolution is 0.
	Metrics *metricsapi.Scraper

	log      *zap.Logger
	sec      *security
	http     *http.Server
	insecure *http.Server // nil when --insecure-listen-address is off
	cancel   context.CancelFunc
	served   chan error
	opts     Options
}

// Start runs an apiserver until Close. reg receives its metrics; nil makes a
// fresh registry.
func Start(ctx context.Context, o Options, log *zap.Logger, reg *prometheus.Registry) (*APIServer, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	a := &APIServer{log: log, served: make(chan error, 2), opts: o, CertDir: o.certDir()}
	sec, err := loadSecurity(o, log)
	if err != nil {
		return nil, err
	}
	a.sec = sec
	ok := false
	var listeners []net.Listener
	defer func() {
		if !ok {
			for _, ln := range listeners {
				ln.Close()
			}
			a.closeEtcd()
		}
	}()

	endpoints := o.EtcdServers
	if len(endpoints) == 0 {
		e, err := startEmbeddedEtcd(o, log)
		if err != nil {
			return nil, err
		}
		a.Etcd = e
		endpoints = []string{"http://" + e.Clients[0].Addr().String()}
	}
	a.EtcdEndpoints = endpoints
	client, err := clientv3.New(clientv3.Config{
		Endpoints:          endpoints,
		DialTimeout:        5 * time.Second,
		MaxCallSendMsgSize: MaxRequestBytes + 64<<10,
		Logger:             log.Named("etcd-client").WithOptions(zap.IncreaseLevel(zapcore.WarnLevel)),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	a.EtcdClient = client

	scheme := registry.NewScheme()
	codec, err := storageCodec(registry.NewStorageCodec(scheme), o.EncryptionKeyFile)
	if err != nil {
		return nil, err
	}
	store, err := storage.New(storage.Config{Client: client, Codec: codec, Registerer: reg})
	if err != nil {
		return nil, err
	}
	alloc, err := registry.NewServiceAllocator(o.ServiceClusterRange, o.ServiceNodePorts)
	if err != nil {
		return nil, err
	}
	ready := func(ctx context.Context) error {
		_, err := client.Get(ctx, "/registry/health", clientv3.WithCountOnly())
		return err
	}
	var cache *cacher.Cacher
	if o.WatchCache {
		cache, err = cacher.New(cacher.Config{Store: store, Resources: cacher.Cacheable(registry.NewSet().All()),
			Logger: log.Named("cacher"), Registerer: reg})
		if err != nil {
			return nil, err
		}
	}
	var metricsSource server.MetricsSource
	if o.MetricResolution > 0 {
		getter := o.SummaryGetter
		if getter == nil {
			t := sec.nodeTransport()
			t.MaxIdleConnsPerHost, t.IdleConnTimeout = 2, 2*o.MetricResolution
			getter = metricsapi.HTTPGetter{Client: &http.Client{Timeout: o.MetricNodeTimeout, Transport: t, CheckRedirect: noRedirects}, Scheme: sec.nodeScheme()}
		}
		a.Metrics, err = metricsapi.New(metricsapi.Config{
			Objects: storeLister{store: store, cache: cache, res: registry.NewSet()}, Getter: getter,
			Resolution: o.MetricResolution, NodeTimeout: o.MetricNodeTimeout, Log: log, Registerer: reg,
		})
		if err != nil {
			return nil, err
		}
		metricsSource = a.Metrics
	}
	srv, err := server.New(server.Config{
		Store: store, Resources: registry.NewSet(), Scheme: scheme, Allocator: alloc,
		Logger: log, Registerer: reg, Gatherer: reg, Ready: ready,
		Version:          version.Info{Major: "1", Minor: "37", GitVersion: Version, Platform: "linux"},
		BookmarkInterval: o.BookmarkInterval,
		NodeClient:       &http.Client{Timeout: 0, Transport: nodeLogTransport(sec), CheckRedirect: noRedirects},
		NodeScheme:       sec.nodeScheme(),
		Metrics:          metricsSource,
		Cache:            cache,
		Profiling:        o.Profiling,
	})
	if err != nil {
		return nil, err
	}
	a.Server = srv

	// etcd may need a moment (an external cluster electing a leader).
	waitCtx, cancelWait := context.WithTimeout(ctx, 60*time.Second)
	defer cancelWait()
	for {
		err := ready(waitCtx)
		if err == nil {
			break
		}
		if waitCtx.Err() != nil {
			return nil, fmt.Errorf("etcd at %v does not answer: %w", endpoints, err)
		}
		select {
		case <-waitCtx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}

	ln, err := net.Listen("tcp", o.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("--listen-address: %w", err)
	}
	listeners = append(listeners, ln)
	tcp := ln.Addr().(*net.TCPAddr)
	urlHost := tcp.IP
	if urlHost.IsUnspecified() {
		urlHost = net.IPv4(127, 0, 0, 1)
	}
	a.URL = "https://" + net.JoinHostPort(urlHost.String(), strconv.Itoa(tcp.Port))
	advertise := tcp.IP
	if o.AdvertiseAddress != "" {
		advertise = net.ParseIP(o.AdvertiseAddress)
	} else if advertise.IsUnspecified() {
		advertise = net.IPv4(127, 0, 0, 1)
	}
	tlsConfig, err := sec.servingTLS(o, advertise, tcp.IP, tcp.Port, alloc.FirstIP(), log)
	if err != nil {
		return nil, err
	}
	var insecureLn net.Listener
	if o.InsecureListenAddress != "" {
		if insecureLn, err = net.Listen("tcp", o.InsecureListenAddress); err != nil {
			return nil, fmt.Errorf("--insecure-listen-address: %w", err)
		}
		listeners = append(listeners, insecureLn)
		a.InsecureURL = "http://" + insecureLn.Addr().String()
	}
	if err := srv.Bootstrap(ctx, advertise, int32(tcp.Port)); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	chain := a.handlerChain(srv)
	a.http = &http.Server{
		Handler:           chain,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
		BaseContext:       func(net.Listener) context.Context { return runCtx },
	}
	go func() { a.served <- a.http.ServeTLS(ln, "", "") }()
	if insecureLn != nil {
		insecureCtx := withInsecureListener(runCtx)
		a.insecure = &http.Server{
			Handler:           chain,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       90 * time.Second,
			ErrorLog:          zap.NewStdLog(log.Named("http-insecure")),
			BaseContext:       func(net.Listener) context.Context { return insecureCtx },
		}
		go func() { a.served <- a.insecure.Serve(insecureLn) }()
		log.Warn("serving plain HTTP without authentication: every request is system:unsecured (system:masters)", zap.String("url", a.InsecureURL))
	}
	go srv.CountObjects(runCtx, 30*time.Second)
	if cache != nil {
		go cache.Run(runCtx)
	}
	if a.Metrics != nil {
		go a.Metrics.Run(runCtx)
	}
	if o.CompactInterval > 0 {
		go compactLoop(runCtx, client, o.CompactInterval, log)
	}
	log.Info("apiserver serving", zap.String("url", a.URL), zap.String("certDir", a.CertDir), zap.Strings("etcd", endpoints),
		zap.String("serviceClusterIPRange", o.ServiceClusterRange), zap.String("advertise", advertise.String()))
	ok = true
	return a, nil
}

// Done is closed with the serve error when the HTTP server stops by itself.
func (a *APIServer) Done() <-chan error { return a.served }

// Close stops serving (waiting up to the shutdown timeout for requests in
// flight; watches are ended), then the etcd client and embedded etcd.
func (a *APIServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.ShutdownTimeout)
	defer cancel()
	a.cancel() // ends watches and background loops
	servers := []*http.Server{a.http}
	if a.insecure != nil {
		servers = append(servers, a.insecure)
	}
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Shutdown(ctx)
			if errors.Is(errs[i], context.DeadlineExceeded) {
				errs[i] = s.Close()
			}
		}()
	}
	wg.Wait()
	a.closeEtcd()
	return errors.Join(errs...)
}

// nodeLogTransport is the pods/log proxy's transport to node agents.
// noRedirects keeps requests to node agents at the address the node
// published: a node answering with a redirect would otherwise have the
// apiserver carry its client certificate (and its reach) wherever it says.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func nodeLogTransport(sec *security) *http.Transport {
	t := sec.nodeTransport()
	t.ResponseHeaderTimeout = 30 * time.Second
	return t
}

func (a *APIServer) closeEtcd() {
	if a.EtcdClient != nil {
		a.EtcdClient.Close()
	}
	if a.Etcd != nil {
		a.Etcd.Close()
	}
}

func startEmbeddedEtcd(o Options, log *zap.Logger) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "kubeish"
	cfg.Dir = filepath.Join(o.DataDir, "etcd")
	client, err := url.Parse(o.EtcdClientURL)
	if err != nil {
		return nil, fmt.Errorf("--etcd-listen-client-url: %w", err)
	}
	peer, err := url.Parse(o.EtcdPeerURL)
	if err != nil {
		return nil, fmt.Errorf("--etcd-listen-peer-url: %w", err)
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.MaxRequestBytes = MaxRequestBytes + 64<<10
	cfg.QuotaBackendBytes = 8 << 30
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(log.Named("etcd").WithOptions(zap.IncreaseLevel(zapcore.WarnLevel)))
	// Metrics of the embedded etcd are left out of the apiserver's registry.
	cfg.Metrics = "basic"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd in %s: %w", cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("embedded etcd did not become ready in 60s")
	}
}

// compactLoop compacts etcd every interval to the revision seen one
// interval before, so one interval of history stays watchable. Several
// apiservers may each do it; a revision already compacted is not an error.
func compactLoop(ctx context.Context, c *clientv3.Client, interval time.Duration, log *zap.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var prev int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		resp, err := c.Get(ctx, "/registry/compact", clientv3.WithCountOnly())
		if err != nil {
			log.Warn("etcd compaction: reading revision", zap.Error(err))
			continue
		}
		if prev > 0 {
			if _, err := c.Compact(ctx, prev); err != nil && !strings.Contains(err.Error(), "compacted") {
				log.Warn("etcd compaction", zap.Int64("revision", prev), zap.Error(err))
			} else {
				log.Debug("etcd compacted", zap.Int64("revision", prev))
			}
		}
		prev = resp.Header.Revision
	}
}
