package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/remotes/docker"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.uber.org/zap"

	"github.com/kubeish/kubeish/kubeletish/network"
)

// Snapshotter every container's root filesystem comes from.
const Snapshotter = "overlayfs"

// ContainerdConfig configures the containerd runtime.
type ContainerdConfig struct {
	Client *containerd.Client
	// Namespace in containerd, one per node when nodes share a daemon.
	Namespace string
	Network   *network.Manager
	// LogDriver is the binary the shim starts to write a container's
	// output in the CRI log format (kubeletish itself, `log-driver` mode);
	// it outlives agent restarts, as the shim does.
	LogDriver string
	// InsecureRegistries are pulled from over plain HTTP.
	InsecureRegistries []string
	Log                *zap.Logger
}

// Containerd is the Runtime over containerd and CNI.
type Containerd struct {
	cfg ContainerdConfig
	mu  sync.Mutex // serialises reaping of exited tasks
}

// NewContainerd returns the runtime.
func NewContainerd(cfg ContainerdConfig) *Containerd {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Containerd{cfg: cfg}
}

// Dial connects to containerd at address.
func Dial(address, namespace string) (*containerd.Client, error) {
	return containerd.New(address, containerd.WithDefaultNamespace(namespace), containerd.WithTimeout(10*time.Second))
}

func (r *Containerd) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.cfg.Namespace)
}

// Version implements Runtime.
func (r *Containerd) Version(ctx context.Context) (string, error) {
	v, err := r.cfg.Client.Version(r.ctx(ctx))
	if err != nil {
		return "", err
	}
	return "containerd://" + v.Version, nil
}

// RunSandbox implements Runtime.
func (r *Containerd) RunSandbox(ctx context.Context, pod PodRef, hostNetwork bool) (*Sandbox, error) {
	s, err := r.cfg.Network.Setup(ctx, pod.UID, pod.Namespace, pod.Name, hostNetwork)
	if err != nil {
		return nil, err
	}
	return fromNetwork(s), nil
}

func fromNetwork(s *network.Sandbox) *Sandbox {
	return &Sandbox{Pod: PodRef{UID: s.PodUID, Namespace: s.PodNamespace, Name: s.PodName}, NetNSPath: s.NetNSPath, IP: s.IP, HostNetwork: s.HostNetwork, CreatedAt: s.CreatedAt}
}

// RemoveSandbox implements Runtime.
func (r *Containerd) RemoveSandbox(ctx context.Context, podUID string) error {
	return r.cfg.Network.Teardown(ctx, podUID)
}

// GetSandbox implements Runtime.
func (r *Containerd) GetSandbox(ctx context.Context, podUID string) (*Sandbox, error) {
	s, err := r.cfg.Network.Get(podUID)
	if err != nil || s == nil {
		return nil, err
	}
	if !s.HostNetwork && s.IP == "" {
		return nil, nil // half made: RunSandbox redoes it
	}
	return fromNetwork(s), nil
}

// ListSandboxes implements Runtime.
func (r *Containerd) ListSandboxes(ctx context.Context) ([]Sandbox, error) {
	l, err := r.cfg.Network.List()
	if err != nil {
		return nil, err
	}
	out := make([]Sandbox, 0, len(l))
	for i := range l {
		out = append(out, *fromNetwork(&l[i]))
	}
	return out, nil
}

// EnsureImage implements Runtime.
func (r *Containerd) EnsureImage(ctx context.Context, ref string, policy PullPolicy) (string, error) {
	ctx = r.ctx(ctx)
	img, err := r.cfg.Client.GetImage(ctx, ref)
	if err == nil && policy != PullAlways {
		if unpacked, _ := img.IsUnpacked(ctx, Snapshotter); !unpacked {
			if err := img.Unpack(ctx, Snapshotter); err != nil {
				return "", fmt.Errorf("unpacking %s: %w", ref, err)
			}
		}
		return img.Target().Digest.String(), nil
	}
	if err != nil && !errdefs.IsNotFound(err) {
		return "", err
	}
	if policy == PullNever {
		return "", ErrImageNeverPull
	}
	insecure := map[string]bool{}
	for _, h := range r.cfg.InsecureRegistries {
		insecure[h] = true
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(
		docker.WithPlainHTTP(func(host string) (bool, error) { return insecure[host], nil }))})
	img, err = r.cfg.Client.Pull(ctx, NormalizeRef(ref), containerd.WithPullUnpack, containerd.WithResolver(resolver), containerd.WithPullSnapshotter(Snapshotter))
	if err != nil {
		return "", err
	}
	if img.Name() != ref {
		// Keep the name the pod used, so the next lookup finds it.
		_, _ = r.cfg.Client.ImageService().Create(ctx, images.Image{Name: ref, Target: img.Target()})
	}
	return img.Target().Digest.String(), nil
}

// NormalizeRef turns Docker's short names into full ones
// ("busybox:1" → "docker.io/library/busybox:1").
func NormalizeRef(ref string) string {
	first, _, hasSlash := strings.Cut(ref, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return ref
	}
	if !hasSlash {
		return "docker.io/library/" + ref
	}
	return "docker.io/" + ref
}

// ImportFile imports an OCI or Docker image archive and unpacks its images
// for containers. It returns the image names.
func ImportFile(ctx context.Context, client *containerd.Client, namespace, file string) ([]string, error) {
	ctx = namespaces.WithNamespace(ctx, namespace)
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	imgs, err := client.Import(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", file, err)
	}
	var names []string
	for _, i := range imgs {
		img := containerd.NewImage(client, i)
		if err := img.Unpack(ctx, Snapshotter); err != nil {
			return nil, fmt.Errorf("unpacking %s: %w", i.Name, err)
		}
		names = append(names, i.Name)
	}
	return names, nil
}

// containerID is unique per pod, container and attempt, and readable in
// `ctr containers ls`.
func containerID(cfg ContainerConfig) string {
	uid := cfg.Pod.UID
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return fmt.Sprintf("%s_%s_%s_%s_%d", cfg.Pod.Namespace, cfg.Pod.Name, cfg.Name, uid, cfg.Attempt)
}

// StartContainer implements Runtime.
func (r *Containerd) StartContainer(ctx context.Context, sb *Sandbox, cfg ContainerConfig) (string, error) {
	ctx = r.ctx(ctx)
	img, err := r.cfg.Client.GetImage(ctx, cfg.Image)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", cfg.Image, err)
	}
	id := containerID(cfg)
	mounts := make([]specs.Mount, 0, len(cfg.Mounts))
	for _, m := range cfg.Mounts {
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		mounts = append(mounts, specs.Mount{Destination: m.ContainerPath, Type: "bind", Source: m.HostPath, Options: opts})
	}
	specOpts := []oci.SpecOpts{
		oci.WithDefaultSpec(),
		oci.WithImageConfig(img),
		oci.WithHostname(cfg.Hostname),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: sb.NetNSPath}),
		oci.WithMounts(mounts),
		oci.WithCgroup(ContainerCgroup(cfg.CgroupParent, id)),
		oci.WithEnv(cfg.Env),
	}
	switch {
	case len(cfg.Command) > 0:
		specOpts = append(specOpts, oci.WithProcessArgs(append(append([]string{}, cfg.Command...), cfg.Args...)...))
	case len(cfg.Args) > 0:
		specOpts = append(specOpts, oci.WithImageConfigArgs(img, cfg.Args))
	}
	if cfg.WorkingDir != "" {
		specOpts = append(specOpts, oci.WithProcessCwd(cfg.WorkingDir))
	}
	if cfg.MemoryLimit > 0 {
		specOpts = append(specOpts, oci.WithMemoryLimit(uint64(cfg.MemoryLimit)))
	}
	if cfg.CPUShares > 0 {
		specOpts = append(specOpts, oci.WithCPUShares(cfg.CPUShares))
	}
	if cfg.CPUQuota > 0 {
		specOpts = append(specOpts, oci.WithCPUCFS(cfg.CPUQuota, cfg.CPUPeriod))
	}
	labels := map[string]string{
		LabelPodUID:        cfg.Pod.UID,
		LabelPodNamespace:  cfg.Pod.Namespace,
		LabelPodName:       cfg.Pod.Name,
		LabelContainerName: cfg.Name,
		LabelAttempt:       strconv.Itoa(cfg.Attempt),
		LabelHash:          cfg.Hash,
		LabelImage:         cfg.Image,
		LabelLogPath:       cfg.LogPath,
	}
	// A leftover with the same ID (a crash between create and the label
	// update) is replaced.
	if old, err := r.cfg.Client.LoadContainer(ctx, id); err == nil {
		r.removeLoaded(ctx, old)
	}
	c, err := r.cfg.Client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithSnapshotter(Snapshotter),
		containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(specOpts...),
		containerd.WithContainerLabels(labels),
	)
	if err != nil {
		return "", fmt.Errorf("creating container: %w", err)
	}
	if cfg.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.LogPath), 0o750); err != nil {
			return id, err
		}
	}
	creator := cio.NullIO
	if cfg.LogPath != "" && r.cfg.LogDriver != "" {
		creator = cio.BinaryIO(r.cfg.LogDriver, map[string]string{"log-driver": cfg.LogPath})
	}
	task, err := c.NewTask(ctx, creator)
	if err != nil {
		r.markExited(ctx, c, 128, "StartError", time.Now())
		return id, fmt.Errorf("creating task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
		r.markExited(ctx, c, 128, "StartError", time.Now())
		return id, fmt.Errorf("starting task: %w", err)
	}
	if _, err := c.SetLabels(ctx, map[string]string{LabelStartedAt: time.Now().UTC().Format(time.RFC3339Nano)}); err != nil {
		r.cfg.Log.Warn("labelling started container", zap.String("id", id), zap.Error(err))
	}
	return id, nil
}

func (r *Containerd) markExited(ctx context.Context, c containerd.Container, code int, reason string, at time.Time) {
	_, err := c.SetLabels(ctx, map[string]string{
		LabelExitCode:   strconv.Itoa(code),
		LabelReason:     reason,
		LabelFinishedAt: at.UTC().Format(time.RFC3339Nano),
	})
	if err != nil && !errdefs.IsNotFound(err) {
		r.cfg.Log.Warn("labelling exited container", zap.String("id", c.ID()), zap.Error(err))
	}
}

// StopContainer implements Runtime.
func (r *Containerd) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	ctx = r.ctx(ctx)
	c, err := r.cfg.Client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return err
	}
	st, err := task.Status(ctx)
	if err == nil && st.Status != containerd.Stopped {
		if grace > 0 {
			if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
				return err
			}
			select {
			case <-exited:
				return r.reap(ctx, c, task)
			case <-time.After(grace):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("container %s did not exit after SIGKILL", id)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return r.reap(ctx, c, task)
}

// reap records an exited task's status in the container's labels (so it
// survives the task and the agent) and deletes the task.
func (r *Containerd) reap(ctx context.Context, c containerd.Container, task containerd.Task) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Status != containerd.Stopped {
		return nil
	}
	code := int(st.ExitStatus)
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	if code == 137 && r.oomKilled(ctx, c) {
		reason = "OOMKilled"
	}
	at := st.ExitTime
	if at.IsZero() {
		at = time.Now()
	}
	r.markExited(ctx, c, code, reason, at)
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("deleting task: %w", err)
	}
	return nil
}

// oomKilled reads the cgroup's OOM-kill counter (cgroup v1 memory.oom_control,
// v2 memory.events) before the task and its cgroup go.
func (r *Containerd) oomKilled(ctx context.Context, c containerd.Container) bool {
	spec, err := c.Spec(ctx)
	if err != nil || spec.Linux == nil {
		return false
	}
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", spec.Linux.CgroupsPath, "memory.oom_control"),
		filepath.Join("/sys/fs/cgroup", spec.Linux.CgroupsPath, "memory.events"),
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if n, ok := strings.CutPrefix(l, "oom_kill "); ok && strings.TrimSpace(n) != "0" {
				return true
			}
		}
	}
	return false
}

// RemoveContainer implements Runtime.
func (r *Containerd) RemoveContainer(ctx context.Context, id string) error {
	ctx = r.ctx(ctx)
	c, err := r.cfg.Client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return r.removeLoaded(ctx, c)
}

func (r *Containerd) removeLoaded(ctx context.Context, c containerd.Container) error {
	if task, err := c.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("deleting task: %w", err)
		}
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// ListContainers implements Runtime. Exited tasks found on the way are
// reaped: their exit is recorded in labels and the task deleted.
func (r *Containerd) ListContainers(ctx context.Context, podUID string) ([]Container, error) {
	ctx = r.ctx(ctx)
	filter := "labels.\"" + LabelPodUID + "\""
	if podUID != "" {
		filter += "==" + podUID
	}
	cs, err := r.cfg.Client.Containers(ctx, filter)
	if err != nil {
		return nil, err
	}
	out := make([]Container, 0, len(cs))
	for _, c := range cs {
		info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ct := fromLabels(info.ID, info.Labels)
		ct.CreatedAt = info.CreatedAt
		if img, err := r.cfg.Client.GetImage(ctx, info.Image); err == nil {
			ct.ImageID = img.Target().Digest.String()
		}
		if ct.State != StateExited {
			task, err := c.Task(ctx, nil)
			switch {
			case errdefs.IsNotFound(err):
				// No task and no recorded exit: lost (e.g. the machine restarted).
				ct.State, ct.ExitCode, ct.Reason = StateExited, 255, "Unknown"
				ct.FinishedAt = ct.StartedAt
			case err != nil:
				return nil, err
			default:
				st, err := task.Status(ctx)
				if err != nil && !errdefs.IsNotFound(err) {
					return nil, err
				}
				if st.Status == containerd.Stopped || errdefs.IsNotFound(err) {
					if err := r.reap(ctx, c, task); err != nil {
						return nil, err
					}
					info, err = c.Info(ctx)
					if err != nil {
						return nil, err
					}
					ct = fromLabels(info.ID, info.Labels)
					ct.CreatedAt = info.CreatedAt
				} else {
					ct.State = StateRunning
				}
			}
		}
		out = append(out, ct)
	}
	return out, nil
}

func fromLabels(id string, l map[string]string) Container {
	attempt, _ := strconv.Atoi(l[LabelAttempt])
	c := Container{
		ID:      id,
		Pod:     PodRef{UID: l[LabelPodUID], Namespace: l[LabelPodNamespace], Name: l[LabelPodName]},
		Name:    l[LabelContainerName],
		Attempt: attempt,
		Hash:    l[LabelHash],
		Image:   l[LabelImage],
		LogPath: l[LabelLogPath],
		State:   StateCreated,
		Reason:  l[LabelReason],
	}
	c.StartedAt, _ = time.Parse(time.RFC3339Nano, l[LabelStartedAt])
	if code, ok := l[LabelExitCode]; ok {
		c.State = StateExited
		c.ExitCode, _ = strconv.Atoi(code)
		c.FinishedAt, _ = time.Parse(time.RFC3339Nano, l[LabelFinishedAt])
	}
	return c
}

// Exec implements Runtime.
func (r *Containerd) Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, []byte, error) {
	ctx = r.ctx(ctx)
	c, err := r.cfg.Client.LoadContainer(ctx, id)
	if err != nil {
		return 0, nil, err
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return 0, nil, err
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return 0, nil, err
	}
	pspec := *spec.Process
	pspec.Args = cmd
	pspec.Terminal = false
	var out bytes.Buffer
	lw := &limitedWriter{w: &out, n: 64 << 10}
	execID := fmt.Sprintf("probe-%d", time.Now().UnixNano())
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(cio.WithStreams(nil, lw, lw)))
	if err != nil {
		return 0, nil, err
	}
	defer func() { _, _ = proc.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill) }()
	exited, err := proc.Wait(ctx)
	if err != nil {
		return 0, nil, err
	}
	if err := proc.Start(ctx); err != nil {
		return 0, nil, err
	}
	select {
	case st := <-exited:
		proc.IO().Wait()
		return int(st.ExitCode()), out.Bytes(), st.Error()
	case <-time.After(timeout):
		_ = proc.Kill(ctx, syscall.SIGKILL)
		return 0, out.Bytes(), ErrExecTimeout
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

// ErrExecTimeout is returned when an exec ran past its timeout.
var ErrExecTimeout = errors.New("exec timed out")

type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n <= 0 {
		return len(p), nil
	}
	q := p
	if len(q) > l.n {
		q = q[:l.n]
	}
	l.n -= len(q)
	_, err := l.w.Write(q)
	return len(p), err
}
