package pod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	kdns "github.com/kubeish/kubeish/kubeletish/dns"
	"github.com/kubeish/kubeish/kubeletish/network"
	"github.com/kubeish/kubeish/kubeletish/probe"
	"github.com/kubeish/kubeish/kubeletish/runtime"
)

// Config configures the pod manager.
type Config struct {
	NodeName string
	HostIP   string
	Client   kubernetes.Interface
	Runtime  runtime.Runtime
	Clock    clock.Clock
	Log      *zap.Logger
	// RootDir holds pod volumes (pods/<uid>/volumes) and logs (logs/).
	RootDir string
	// CgroupParent of every pod's cgroup (pod<uid> below it).
	CgroupParent string
	// RelistPeriod is how often the runtime is listed to notice changes
	// (default 1 s); ResyncPeriod how often every pod is synced anyway.
	RelistPeriod, ResyncPeriod time.Duration
	Metrics                    *Metrics
	// ClusterDNS is the nameserver written into pods' resolv.conf (the
	// node's cluster DNS, on its bridge address); empty: none, only the
	// cluster search path.
	ClusterDNS string
	// ClusterDomain is the cluster DNS domain of the search path (empty:
	// cluster.local).
	ClusterDomain string
	// Recorder records the pods' events (failed lifecycle hooks); nil:
	// the manager records to the API through Client, as the kubelet
	// (source component "kubelet", host NodeName), while Run runs.
	Recorder record.EventRecorder
	// Pods, when set, gives the node's pods instead of the manager's own
	// informer (a watch on spec.nodeName=NodeName); see PodSource.
	Pods PodSource
}

// Manager keeps the node's pods running as the API wants them.
type Manager struct {
	cfg     Config
	log     *zap.Logger
	backoff *Backoff
	pulls   *ImagePuller
	probes  *probe.Manager
	objects Objects
	indexer cache.Indexer
	// recorder records events; broadcaster, when the manager made it,
	// sends them to the API while Run runs.
	recorder    record.EventRecorder
	broadcaster record.EventBroadcaster

	mu      sync.Mutex
	workers map[types.UID]*worker
	// waiting are the last sync's waiting reasons per pod.
	waiting map[types.UID]map[string]v1.ContainerStateWaiting
	lastVol map[types.UID]time.Time
	seen    map[types.UID]string // relist fingerprint per pod
	synced  bool
	// preStopped are the containers whose preStop hook ran, per pod: a
	// stop that is retried does not run it again.
	preStopped map[types.UID]map[string]bool
	// postStarts cancel the pods' running postStart hooks, for a deletion
	// that comes while one runs.
	postStarts map[types.UID]context.CancelFunc
}

type worker struct {
	wake chan struct{}
}

const uidIndex = "uid"

// New returns a manager; Run starts it.
func New(cfg Config) *Manager {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.RelistPeriod == 0 {
		cfg.RelistPeriod = time.Second
	}
	if cfg.ResyncPeriod == 0 {
		cfg.ResyncPeriod = 10 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	m := &Manager{cfg: cfg, log: cfg.Log, backoff: NewBackoff(cfg.Clock), pulls: NewImagePuller(cfg.Runtime, cfg.Clock), objects: Objects{Client: cfg.Client},
		workers: map[types.UID]*worker{}, waiting: map[types.UID]map[string]v1.ContainerStateWaiting{},
		lastVol: map[types.UID]time.Time{}, seen: map[types.UID]string{},
		preStopped: map[types.UID]map[string]bool{}, postStarts: map[types.UID]context.CancelFunc{}}
	m.recorder = cfg.Recorder
	switch {
	case m.recorder != nil:
	case cfg.Client != nil:
		m.broadcaster = record.NewBroadcaster()
		m.recorder = m.broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: cfg.NodeName})
	default:
		m.recorder = &record.FakeRecorder{} // no API, no events
	}
	m.probes = probe.NewManager(cfg.Runtime.Exec, m.enqueue, cfg.Log.Named("probe"))
	return m
}

// Backoff exposes the restart back-off (for tests).
func (m *Manager) Backoff() *Backoff { return m.backoff }

// Synced reports whether the pod informer has synced (for /healthz).
func (m *Manager) Synced() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.synced }

// GetPod returns the pod by namespace and name from the informer cache.
func (m *Manager) GetPod(ns, name string) *v1.Pod {
	if m.indexer == nil {
		return nil
	}
	o, ok, _ := m.indexer.GetByKey(ns + "/" + name)
	if !ok {
		return nil
	}
	return o.(*v1.Pod)
}

// Run watches the node's pods and syncs them until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	if m.broadcaster != nil {
		m.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: m.cfg.Client.CoreV1().Events("")})
		defer m.broadcaster.Shutdown()
	}
	var factory informers.SharedInformerFactory
	inf := m.cfg.Pods
	if inf == nil {
		factory = informers.NewSharedInformerFactoryWithOptions(m.cfg.Client, 0,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", m.cfg.NodeName).String()
			}))
		inf = factory.Core().V1().Pods().Informer()
	}
	if err := inf.AddIndexers(cache.Indexers{uidIndex: func(o any) ([]string, error) {
		return []string{string(o.(*v1.Pod).UID)}, nil
	}}); err != nil {
		return err
	}
	m.indexer = inf.GetIndexer()
	enqueueObj := func(o any, deleted bool) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if p, ok := o.(*v1.Pod); ok {
			if deleted || p.DeletionTimestamp != nil {
				// The worker may be waiting on a postStart hook; the
				// termination must not wait for it.
				m.interruptPostStart(p.UID)
			}
			m.enqueue(p.UID)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { enqueueObj(o, false) },
		UpdateFunc: func(_, n any) { enqueueObj(n, false) },
		DeleteFunc: func(o any) { enqueueObj(o, true) },
	})
	if factory != nil {
		factory.Start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return ctx.Err()
	}
	m.mu.Lock()
	m.synced = true
	m.mu.Unlock()
	m.log.Info("pod informer synced")
	// The first relist finds every container and sandbox there is,
	// adopting those of known pods and cleaning up the others.
	relist := time.NewTicker(m.cfg.RelistPeriod)
	defer relist.Stop()
	resync := time.NewTicker(m.cfg.ResyncPeriod)
	defer resync.Stop()
	m.relist(ctx, true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-relist.C:
			m.relist(ctx, false)
		case <-resync.C:
			m.relist(ctx, true)
		}
	}
}

// relist compares the runtime's containers with the last relist and wakes
// the pods whose containers changed (all pods when all is set), plus any
// pod the runtime has that the API no longer does.
func (m *Manager) relist(ctx context.Context, all bool) {
	cs, err := m.cfg.Runtime.ListContainers(ctx, "")
	if err != nil {
		m.log.Warn("listing containers", zap.Error(err))
		return
	}
	sbs, err := m.cfg.Runtime.ListSandboxes(ctx)
	if err != nil {
		m.log.Warn("listing sandboxes", zap.Error(err))
		return
	}
	fp := map[types.UID]string{}
	running, runningPods := 0, map[types.UID]bool{}
	for _, c := range cs {
		uid := types.UID(c.Pod.UID)
		fp[uid] += fmt.Sprintf("%s:%s:%d;", c.ID, c.State, c.ExitCode)
		if c.State == runtime.StateRunning {
			running++
			runningPods[uid] = true
		}
	}
	for _, s := range sbs {
		fp[types.UID(s.Pod.UID)] += "sb;"
	}
	m.cfg.Metrics.RunningContainers.Set(float64(running))
	m.cfg.Metrics.RunningPods.Set(float64(len(runningPods)))
	for _, o := range m.indexer.List() {
		uid := o.(*v1.Pod).UID
		if _, ok := fp[uid]; !ok {
			fp[uid] = ""
		}
	}
	m.mu.Lock()
	var wake []types.UID
	for uid, f := range fp {
		if old, ok := m.seen[uid]; all || !ok || old != f {
			wake = append(wake, uid)
		}
	}
	m.seen = fp
	m.mu.Unlock()
	for _, uid := range wake {
		m.enqueue(uid)
	}
}

// enqueue wakes the pod's worker, starting one if needed.
func (m *Manager) enqueue(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.workers[uid]
	if !ok {
		w = &worker{wake: make(chan struct{}, 1)}
		m.workers[uid] = w
		go m.work(uid, w)
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// work is one pod's worker: it syncs on every wake-up and when a requeue
// is due, and ends when the pod is gone from both the API and the node.
func (m *Manager) work(uid types.UID, w *worker) {
	ctx := context.Background()
	var timer <-chan time.Time
	failures := 0
	for {
		select {
		case <-w.wake:
		case <-timer:
		}
		start := m.cfg.Clock.Now()
		requeue, done, err := m.sync(ctx, uid)
		m.cfg.Metrics.SyncDuration.Observe(m.cfg.Clock.Since(start).Seconds())
		if err != nil {
			failures++
			d := time.Duration(1<<min(failures, 6)) * 100 * time.Millisecond
			m.log.Info("pod sync failed, retrying", zap.String("uid", string(uid)), zap.Duration("after", d), zap.Error(err))
			requeue = d
		} else {
			failures = 0
		}
		if done {
			m.mu.Lock()
			if len(w.wake) == 0 {
				delete(m.workers, uid)
				delete(m.waiting, uid)
				delete(m.lastVol, uid)
				delete(m.preStopped, uid)
				m.mu.Unlock()
				return
			}
			m.mu.Unlock()
		}
		timer = nil
		if requeue > 0 {
			timer = m.cfg.Clock.After(requeue)
		}
	}
}

func (m *Manager) podByUID(uid types.UID) *v1.Pod {
	objs, _ := m.indexer.ByIndex(uidIndex, string(uid))
	if len(objs) == 0 {
		return nil
	}
	return objs[0].(*v1.Pod)
}

// PodDir is the pod's folder under the root dir.
func (m *Manager) PodDir(uid types.UID) string {
	return filepath.Join(m.cfg.RootDir, "pods", string(uid))
}

// LogPath is where a container attempt logs, as the kubelet lays it out.
func (m *Manager) LogPath(pod *v1.Pod, container string, attempt int) string {
	return filepath.Join(m.cfg.RootDir, "logs", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), container, fmt.Sprintf("%d.log", attempt))
}

func (m *Manager) cgroupParent(uid types.UID) string {
	return filepath.Join(m.cfg.CgroupParent, "pod"+string(uid))
}

// sync converges one pod. done means the pod is gone and cleaned up.
func (m *Manager) sync(ctx context.Context, uid types.UID) (requeue time.Duration, done bool, err error) {
	pod := m.podByUID(uid)
	log := m.log.With(zap.String("uid", string(uid)))
	if pod != nil {
		log = m.log.With(zap.String("pod", pod.Namespace+"/"+pod.Name))
	}
	cs, err := m.cfg.Runtime.ListContainers(ctx, string(uid))
	if err != nil {
		return 0, false, err
	}
	sb, err := m.cfg.Runtime.GetSandbox(ctx, string(uid))
	if err != nil {
		return 0, false, err
	}
	if pod == nil {
		// Gone from the API (deleted for good, or force-deleted): remove
		// whatever is left.
		if len(cs) == 0 && sb == nil {
			return 0, true, nil
		}
		log.Info("removing containers of a pod that no longer exists")
		return 0, true, m.teardown(ctx, uid, nil, sb, cs, 2*time.Second)
	}
	pod = pod.DeepCopy()
	if pod.DeletionTimestamp != nil {
		grace := time.Duration(30) * time.Second
		if pod.DeletionGracePeriodSeconds != nil {
			grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
		} else if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
		}
		log.Info("stopping pod", zap.Duration("grace", grace))
		if err := m.teardown(ctx, uid, pod, sb, cs, grace); err != nil {
			return 0, false, err
		}
		zero := int64(0)
		err := m.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return 0, false, err
		}
		log.Info("pod deleted")
		return 0, false, nil // the informer's delete event finishes the worker
	}

	plan := Plan(pod, sb, cs, PlanInput{Now: m.cfg.Clock.Now(), Backoff: m.backoff, LivenessFailed: m.probes.LivenessFailed()})
	waiting := plan.Waiting
	requeue = plan.RequeueAfter
	for _, id := range plan.Remove {
		if err := m.cfg.Runtime.RemoveContainer(ctx, id); err != nil {
			return 0, false, err
		}
	}
	if err := m.killContainers(ctx, pod, sb, plan.Kill, cs, func(k KillAction) time.Duration { return killGrace(pod, k) }); err != nil {
		return 0, false, err
	}
	if len(plan.Kill) > 0 && requeue == 0 {
		requeue = 10 * time.Millisecond
	}
	if plan.CreateSandbox {
		sb, err = m.cfg.Runtime.RunSandbox(ctx, runtime.PodRef{UID: string(pod.UID), Namespace: pod.Namespace, Name: pod.Name}, pod.Spec.HostNetwork)
		if errors.Is(err, network.ErrNoPodCIDR) {
			log.Info("waiting for the node's pod CIDR")
			return time.Second, false, m.writeStatus(ctx, pod, nil, cs, waiting)
		}
		if err != nil {
			return 0, false, fmt.Errorf("sandbox: %w", err)
		}
		log.Info("sandbox ready", zap.String("ip", sb.IP))
	}
	if len(plan.Start) > 0 {
		vols, err := m.volumes(ctx, pod, true)
		if err == nil {
			for _, s := range plan.Start {
				if w, err := m.start(ctx, pod, sb, s, vols); err != nil {
					log.Info("container not started", zap.String("container", s.Container.Name), zap.String("reason", w.Reason), zap.Error(err))
					waiting[s.Container.Name] = w
					if requeue == 0 || requeue > 5*time.Second {
						requeue = 5 * time.Second
					}
				}
			}
		} else {
			var ce configError
			if !errors.As(err, &ce) {
				return 0, false, err
			}
			for _, s := range plan.Start {
				waiting[s.Container.Name] = v1.ContainerStateWaiting{Reason: ReasonConfigError, Message: err.Error()}
			}
			requeue = 5 * time.Second
		}
		if cs, err = m.cfg.Runtime.ListContainers(ctx, string(uid)); err != nil {
			return 0, false, err
		}
	} else if _, err := m.volumes(ctx, pod, false); err != nil {
		log.Debug("refreshing volumes", zap.Error(err))
	}
	m.mu.Lock()
	m.waiting[uid] = waiting
	m.mu.Unlock()
	if terminal(pod) && sb != nil && !anyRunning(cs) {
		// A finished pod gives its address back; its status keeps the IP.
		if err := m.cfg.Runtime.RemoveSandbox(ctx, string(uid)); err != nil {
			return 0, false, err
		}
		sb = nil
	}

	running := map[string]string{}
	for _, c := range cs {
		if c.State == runtime.StateRunning {
			running[c.Name] = c.ID
		}
	}
	podIP := ""
	if sb != nil {
		podIP = sb.IP
	}
	m.probes.Sync(context.Background(), pod, running, podIP)
	return requeue, false, m.writeStatus(ctx, pod, sb, cs, waiting)
}

func anyRunning(cs []runtime.Container) bool {
	for _, c := range cs {
		if c.State == runtime.StateRunning {
			return true
		}
	}
	return false
}

// killGrace is the grace period of a kill: a failed liveness or startup
// probe's own terminationGracePeriodSeconds when it has one (as the
// kubelet), otherwise the pod's.
func killGrace(pod *v1.Pod, k KillAction) time.Duration {
	if spec := containerSpec(pod, k.Name); spec != nil && k.Reason == "LivenessProbeFailed" {
		for _, p := range []*v1.Probe{spec.LivenessProbe, spec.StartupProbe} {
			if p != nil && p.TerminationGracePeriodSeconds != nil {
				return time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
			}
		}
	}
	return gracePeriod(pod)
}

func gracePeriod(pod *v1.Pod) time.Duration {
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

// volumes prepares the pod's volumes: always before starting containers,
// otherwise at most every 10 s so configMap/secret changes show up.
func (m *Manager) volumes(ctx context.Context, pod *v1.Pod, force bool) (map[string]string, error) {
	m.mu.Lock()
	last := m.lastVol[pod.UID]
	m.mu.Unlock()
	if !force && m.cfg.Clock.Since(last) < 10*time.Second {
		return nil, nil
	}
	vols, err := m.objects.Volumes(ctx, pod, filepath.Join(m.PodDir(pod.UID), "volumes"))
	if err == nil {
		m.mu.Lock()
		m.lastVol[pod.UID] = m.cfg.Clock.Now()
		m.mu.Unlock()
	}
	return vols, err
}

func (m *Manager) start(ctx context.Context, pod *v1.Pod, sb *runtime.Sandbox, s StartAction, vols map[string]string) (v1.ContainerStateWaiting, error) {
	c := s.Container
	if w, err := m.pulls.Ensure(ctx, pod, c); err != nil {
		return w, err
	}
	env, err := m.objects.Env(ctx, pod, c, sb.IP, m.cfg.HostIP)
	if err != nil {
		return v1.ContainerStateWaiting{Reason: ReasonConfigError, Message: err.Error()}, err
	}
	etc, err := m.etcFiles(pod, sb)
	if err != nil {
		return v1.ContainerStateWaiting{Reason: ReasonCreateError, Message: err.Error()}, err
	}
	cfg := runtime.ContainerConfig{
		Pod:          runtime.PodRef{UID: string(pod.UID), Namespace: pod.Namespace, Name: pod.Name},
		Name:         c.Name,
		Attempt:      s.Attempt,
		Hash:         ContainerHash(c),
		Image:        c.Image,
		Command:      ExpandAll(c.Command, env),
		Args:         ExpandAll(c.Args, env),
		WorkingDir:   c.WorkingDir,
		Env:          env,
		Hostname:     pod.Name,
		CgroupParent: m.cgroupParent(pod.UID),
		LogPath:      m.LogPath(pod, c.Name, s.Attempt),
		Mounts:       etc,
	}
	if pod.Spec.HostNetwork {
		cfg.Hostname = ""
	}
	for _, vm := range c.VolumeMounts {
		p, ok := vols[vm.Name]
		if !ok {
			return v1.ContainerStateWaiting{Reason: ReasonConfigError, Message: "no volume " + vm.Name}, configError{fmt.Errorf("no volume %q", vm.Name)}
		}
		if vm.SubPath != "" {
			p = filepath.Join(p, filepath.Clean("/"+vm.SubPath))
		}
		cfg.Mounts = append(cfg.Mounts, runtime.Mount{HostPath: p, ContainerPath: vm.MountPath, ReadOnly: vm.ReadOnly})
	}
	Resources(c, &cfg)
	id, err := m.cfg.Runtime.StartContainer(ctx, sb, cfg)
	if err != nil {
		return v1.ContainerStateWaiting{Reason: ReasonCreateError, Message: err.Error()}, err
	}
	// Counted before the postStart hook: a container whose hook keeps
	// failing backs off as one that keeps crashing.
	if s.Restart {
		m.backoff.Next(BackoffKey(pod, c.Name))
		m.cfg.Metrics.Restarts.Inc()
	}
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if w, err := m.runPostStart(ctx, pod, sb, c, id); err != nil {
			return w, err
		}
	}
	if s.Attempt == 0 && !s.Init && pod.Status.Phase == v1.PodPending {
		m.cfg.Metrics.StartLatency.Observe(m.cfg.Clock.Since(pod.CreationTimestamp.Time).Seconds())
	}
	return v1.ContainerStateWaiting{}, nil
}

// etcFiles writes the pod's /etc/hosts, /etc/hostname and /etc/resolv.conf
// (never the machine's own resolv.conf; see dns.ResolvConf) and returns
// their mounts. A host-network pod keeps the host's files, except that
// dnsPolicy ClusterFirstWithHostNet gives it the cluster's resolv.conf.
func (m *Manager) etcFiles(pod *v1.Pod, sb *runtime.Sandbox) ([]runtime.Mount, error) {
	resolv := kdns.ResolvConf(pod, m.cfg.ClusterDNS, m.cfg.ClusterDomain)
	files := map[string]string{"resolv.conf": resolv}
	if pod.Spec.HostNetwork {
		if pod.Spec.DNSPolicy != v1.DNSClusterFirstWithHostNet {
			return nil, nil
		}
	} else {
		files["hosts"] = fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", sb.IP, pod.Name)
		files["hostname"] = pod.Name + "\n"
	}
	dir := filepath.Join(m.PodDir(pod.UID), "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var mounts []runtime.Mount
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, err
		}
		mounts = append(mounts, runtime.Mount{HostPath: p, ContainerPath: "/etc/" + name})
	}
	return mounts, nil
}

// writeStatus computes the pod's status and writes it when it changed.
func (m *Manager) writeStatus(ctx context.Context, pod *v1.Pod, sb *runtime.Sandbox, cs []runtime.Container, waiting map[string]v1.ContainerStateWaiting) error {
	st := ComputeStatus(pod, sb, cs, StatusInput{Now: m.cfg.Clock.Now(), HostIP: m.cfg.HostIP, Waiting: waiting, Ready: m.probes.Ready})
	if apiequality.Semantic.DeepEqual(st, pod.Status) {
		return nil
	}
	pod.Status = st
	_, err := m.cfg.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if apierrors.IsConflict(err) {
		// The cache is behind; its next event wakes the worker again.
		return nil
	}
	return err
}

// teardown stops every container of a pod (in parallel, each with its
// preStop hook and the grace period; pod is nil when the API no longer
// has it, and then no hooks run), removes them, its sandbox, cgroup and
// folders. It blocks only this pod's worker.
func (m *Manager) teardown(ctx context.Context, uid types.UID, pod *v1.Pod, sb *runtime.Sandbox, cs []runtime.Container, grace time.Duration) error {
	m.probes.RemovePod(uid)
	var kills []KillAction
	for _, c := range cs {
		if c.State == runtime.StateRunning {
			kills = append(kills, KillAction{ID: c.ID, Name: c.Name, Reason: "Killing"})
		}
	}
	if err := m.killContainers(ctx, pod, sb, kills, cs, func(KillAction) time.Duration { return grace }); err != nil {
		return err
	}
	for _, c := range cs {
		if err := m.cfg.Runtime.RemoveContainer(ctx, c.ID); err != nil {
			return err
		}
	}
	if err := m.cfg.Runtime.RemoveSandbox(ctx, string(uid)); err != nil {
		return err
	}
	removeCgroup(m.cgroupParent(uid))
	m.backoff.Forget(string(uid) + "/")
	m.pulls.Forget(uid)
	if err := os.RemoveAll(m.PodDir(uid)); err != nil {
		return err
	}
	return nil
}

// removeCgroup removes a pod's (empty) cgroup in every v1 hierarchy and v2.
func removeCgroup(path string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, r := range roots {
		_ = os.Remove(filepath.Join(r, path))
	}
}
