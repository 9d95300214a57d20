// Package runtime is the node agent's edge to the machine: pod sandboxes
// (a network namespace with a CNI network) and containers (in containerd).
// The Runtime interface is what the pod sync loop uses; Containerd
// implements it for real and Fake for unit tests.
package runtime

import (
	"context"
	"errors"
	"path"
	"time"
)

// Labels the agent puts on every containerd container. They are all the
// agent needs to adopt containers after a restart: which pod and which
// container of it, which attempt, and how it ended.
const (
	LabelPodUID        = "io.kubeish.pod.uid"
	LabelPodNamespace  = "io.kubeish.pod.namespace"
	LabelPodName       = "io.kubeish.pod.name"
	LabelContainerName = "io.kubeish.container.name"
	LabelAttempt       = "io.kubeish.container.attempt"
	LabelHash          = "io.kubeish.container.hash"
	LabelImage         = "io.kubeish.container.image"
	LabelLogPath       = "io.kubeish.container.log-path"
	LabelStartedAt     = "io.kubeish.container.started-at"
	LabelFinishedAt    = "io.kubeish.container.finished-at"
	LabelExitCode      = "io.kubeish.container.exit-code"
	LabelReason        = "io.kubeish.container.reason"
)

// PodRef names a pod.
type PodRef struct {
	UID, Namespace, Name string
}

// Sandbox is a pod's network namespace.
type Sandbox struct {
	Pod         PodRef
	NetNSPath   string
	IP          string
	HostNetwork bool
	CreatedAt   time.Time
}

// State of a container.
type State string

// The states a container can be in.
const (
	StateCreated State = "Created"
	StateRunning State = "Running"
	StateExited  State = "Exited"
)

// Container is what the runtime really has.
type Container struct {
	ID         string
	Pod        PodRef
	Name       string
	Attempt    int
	Hash       string
	Image      string
	ImageID    string
	LogPath    string
	State      State
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int
	// Reason of an exited container: Completed, Error, OOMKilled.
	Reason string
}

// Mount is a bind mount into a container.
type Mount struct {
	HostPath, ContainerPath string
	ReadOnly                bool
}

// ContainerConfig is one container to create and start.
type ContainerConfig struct {
	Pod     PodRef
	Name    string
	Attempt int
	// Hash of the container's spec: a changed spec means a new container.
	Hash  string
	Image string
	// Command replaces the image's entrypoint, Args its cmd (Kubernetes'
	// rules: only Args keeps the entrypoint).
	Command, Args []string
	WorkingDir    string
	Env           []string
	Mounts        []Mount
	Hostname      string
	// CgroupParent is the pod's cgroup, e.g. /kubeish/node-1/pod<uid>.
	CgroupParent string
	MemoryLimit  int64  // bytes; 0: none
	CPUShares    uint64 // 0: default
	CPUQuota     int64  // µs per CPUPeriod; 0: none
	CPUPeriod    uint64
	LogPath      string
}

// ContainerCgroup is the cgroup (cgroupfs path) a runtime gives a
// container: its pod's cgroup parent and the container's ID. Stats find
// containers' usage by it.
func ContainerCgroup(parent, id string) string { return path.Join(parent, id) }

// PullPolicy says when to pull an image.
type PullPolicy string

// Pull policies, as in Kubernetes.
const (
	PullAlways       PullPolicy = "Always"
	PullIfNotPresent PullPolicy = "IfNotPresent"
	PullNever        PullPolicy = "Never"
)

// Errors the sync loop branches on.
var (
	// ErrImageNeverPull: the image is absent and the policy is Never.
	ErrImageNeverPull = errors.New("image not present and pull policy is Never")
	// ErrNotFound: no such container or sandbox.
	ErrNotFound = errors.New("not found")
)

// Runtime runs sandboxes and containers. All methods are idempotent where
// it makes sense: creating what exists returns it, removing what is gone
// succeeds. List methods report what the machine really has, so the sync
// loop can compare it with what the API wants.
type Runtime interface {
	// Version of the runtime, for the Node's nodeInfo.
	Version(ctx context.Context) (string, error)

	// RunSandbox returns the pod's sandbox, creating it when missing.
	RunSandbox(ctx context.Context, pod PodRef, hostNetwork bool) (*Sandbox, error)
	// RemoveSandbox releases the pod's network and namespace.
	RemoveSandbox(ctx context.Context, podUID string) error
	// GetSandbox returns the pod's sandbox, or nil when it has none.
	GetSandbox(ctx context.Context, podUID string) (*Sandbox, error)
	// ListSandboxes returns every sandbox of this node.
	ListSandboxes(ctx context.Context) ([]Sandbox, error)

	// EnsureImage makes the image present per the policy and returns its ID.
	EnsureImage(ctx context.Context, ref string, policy PullPolicy) (string, error)

	// StartContainer creates and starts a container in the sandbox.
	StartContainer(ctx context.Context, sb *Sandbox, cfg ContainerConfig) (string, error)
	// StopContainer sends SIGTERM, waits up to grace, then SIGKILL, and
	// waits for the exit.
	StopContainer(ctx context.Context, id string, grace time.Duration) error
	// RemoveContainer removes a container (stopping it at once if needed).
	RemoveContainer(ctx context.Context, id string) error
	// ListContainers returns the containers of one pod (podUID "": of
	// every pod of this node), exited ones too.
	ListContainers(ctx context.Context, podUID string) ([]Container, error)
	// Exec runs cmd in a running container and returns its exit code and
	// output, for exec probes.
	Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, []byte, error)
}
