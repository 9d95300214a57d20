package pod

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeish/kubeish/kubeletish/runtime"
)

// configError is a pod spec the agent cannot run as it stands (a missing
// configMap key, say): CreateContainerConfigError, retried on resync.
type configError struct{ error }

// Objects reads the configMaps and secrets pods refer to.
type Objects struct {
	Client kubernetes.Interface
}

func (o Objects) configMap(ctx context.Context, ns, name string) (*v1.ConfigMap, error) {
	cm, err := o.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return cm, err
}

func (o Objects) secret(ctx context.Context, ns, name string) (*v1.Secret, error) {
	s, err := o.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return s, err
}

// Env builds a container's environment: envFrom first, then env (later
// entries win), with $(VAR) references expanded as Kubernetes does.
func (o Objects) Env(ctx context.Context, pod *v1.Pod, c *v1.Container, podIP, hostIP string) ([]string, error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, ef := range c.EnvFrom {
		var data map[string]string
		optional := false
		switch {
		case ef.ConfigMapRef != nil:
			optional = ef.ConfigMapRef.Optional != nil && *ef.ConfigMapRef.Optional
			cm, err := o.configMap(ctx, pod.Namespace, ef.ConfigMapRef.Name)
			if err != nil {
				return nil, err
			}
			if cm == nil && !optional {
				return nil, configError{fmt.Errorf("configmap %q not found", ef.ConfigMapRef.Name)}
			}
			if cm != nil {
				data = cm.Data
			}
		case ef.SecretRef != nil:
			optional = ef.SecretRef.Optional != nil && *ef.SecretRef.Optional
			s, err := o.secret(ctx, pod.Namespace, ef.SecretRef.Name)
			if err != nil {
				return nil, err
			}
			if s == nil && !optional {
				return nil, configError{fmt.Errorf("secret %q not found", ef.SecretRef.Name)}
			}
			if s != nil {
				data = map[string]string{}
				for k, v := range s.Data {
					data[k] = string(v)
				}
			}
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(ef.Prefix+k, data[k])
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vals))
			continue
		}
		v, ok, err := o.valueFrom(ctx, pod, c, e.ValueFrom, podIP, hostIP)
		if err != nil {
			return nil, err
		}
		if ok {
			set(e.Name, v)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

func (o Objects) valueFrom(ctx context.Context, pod *v1.Pod, c *v1.Container, src *v1.EnvVarSource, podIP, hostIP string) (string, bool, error) {
	switch {
	case src.FieldRef != nil:
		v, err := fieldPath(pod, src.FieldRef.FieldPath, podIP, hostIP)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		r := src.ResourceFieldRef
		var q string
		switch r.Resource {
		case "limits.cpu":
			q = strconv.FormatInt(c.Resources.Limits.Cpu().MilliValue()/1000, 10)
		case "requests.cpu":
			q = strconv.FormatInt((c.Resources.Requests.Cpu().MilliValue()+999)/1000, 10)
		case "limits.memory":
			q = strconv.FormatInt(c.Resources.Limits.Memory().Value(), 10)
		case "requests.memory":
			q = strconv.FormatInt(c.Resources.Requests.Memory().Value(), 10)
		default:
			return "", false, configError{fmt.Errorf("resourceFieldRef %q is not supported", r.Resource)}
		}
		return q, true, nil
	case src.ConfigMapKeyRef != nil:
		r := src.ConfigMapKeyRef
		optional := r.Optional != nil && *r.Optional
		cm, err := o.configMap(ctx, pod.Namespace, r.Name)
		if err != nil {
			return "", false, err
		}
		if cm != nil {
			if v, ok := cm.Data[r.Key]; ok {
				return v, true, nil
			}
		}
		if optional {
			return "", false, nil
		}
		return "", false, configError{fmt.Errorf("configmap %q has no key %q", r.Name, r.Key)}
	case src.SecretKeyRef != nil:
		r := src.SecretKeyRef
		optional := r.Optional != nil && *r.Optional
		s, err := o.secret(ctx, pod.Namespace, r.Name)
		if err != nil {
			return "", false, err
		}
		if s != nil {
			if v, ok := s.Data[r.Key]; ok {
				return string(v), true, nil
			}
		}
		if optional {
			return "", false, nil
		}
		return "", false, configError{fmt.Errorf("secret %q has no key %q", r.Name, r.Key)}
	}
	return "", false, nil
}

func fieldPath(pod *v1.Pod, path, podIP, hostIP string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return podIP, nil
	case "status.hostIP":
		return hostIP, nil
	}
	for _, p := range []struct {
		prefix string
		m      map[string]string
	}{{"metadata.labels", pod.Labels}, {"metadata.annotations", pod.Annotations}} {
		if k, ok := strings.CutPrefix(path, p.prefix+"['"); ok {
			return p.m[strings.TrimSuffix(k, "']")], nil
		}
	}
	return "", configError{fmt.Errorf("fieldRef %q is not supported", path)}
}

// expand replaces $(VAR) with known values; $$ escapes.
func expand(s string, vals map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) {
			if s[i+1] == '$' {
				b.WriteByte('$')
				i++
				continue
			}
			if s[i+1] == '(' {
				if j := strings.IndexByte(s[i+2:], ')'); j >= 0 {
					name := s[i+2 : i+2+j]
					if v, ok := vals[name]; ok {
						b.WriteString(v)
						i += j + 2
						continue
					}
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ExpandAll expands $(VAR) in command or args with the container's env.
func ExpandAll(args []string, env []string) []string {
	if len(args) == 0 {
		return args
	}
	vals := map[string]string{}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		vals[k] = v
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, vals)
	}
	return out
}

// Volumes prepares a pod's volumes under dir and returns the host path of
// each by name. configMap and secret volumes are (re)written on every
// call, so changes reach running containers: each is a folder mounted
// whole, and files are replaced by rename.
func (o Objects) Volumes(ctx context.Context, pod *v1.Pod, dir string) (map[string]string, error) {
	paths := map[string]string{}
	for _, vol := range pod.Spec.Volumes {
		switch {
		case vol.EmptyDir != nil:
			p := filepath.Join(dir, "empty-dir", vol.Name)
			if err := os.MkdirAll(p, 0o777); err != nil {
				return nil, err
			}
			_ = os.Chmod(p, 0o777)
			paths[vol.Name] = p
		case vol.HostPath != nil:
			t := v1.HostPathUnset
			if vol.HostPath.Type != nil {
				t = *vol.HostPath.Type
			}
			switch t {
			case v1.HostPathDirectoryOrCreate:
				if err := os.MkdirAll(vol.HostPath.Path, 0o755); err != nil {
					return nil, err
				}
			case v1.HostPathFileOrCreate:
				if _, err := os.Stat(vol.HostPath.Path); os.IsNotExist(err) {
					if err := os.WriteFile(vol.HostPath.Path, nil, 0o644); err != nil {
						return nil, err
					}
				}
			case v1.HostPathDirectory, v1.HostPathFile, v1.HostPathSocket:
				if _, err := os.Stat(vol.HostPath.Path); err != nil {
					return nil, configError{fmt.Errorf("hostPath %s: %v", vol.HostPath.Path, err)}
				}
			}
			paths[vol.Name] = vol.HostPath.Path
		case vol.ConfigMap != nil:
			src := vol.ConfigMap
			cm, err := o.configMap(ctx, pod.Namespace, src.Name)
			if err != nil {
				return nil, err
			}
			optional := src.Optional != nil && *src.Optional
			if cm == nil && !optional {
				return nil, configError{fmt.Errorf("configmap %q not found", src.Name)}
			}
			data := map[string][]byte{}
			if cm != nil {
				for k, v := range cm.Data {
					data[k] = []byte(v)
				}
				for k, v := range cm.BinaryData {
					data[k] = v
				}
			}
			p := filepath.Join(dir, "configmap", vol.Name)
			if err := writeFiles(p, data, src.Items, src.DefaultMode); err != nil {
				return nil, err
			}
			paths[vol.Name] = p
		case vol.Secret != nil:
			src := vol.Secret
			s, err := o.secret(ctx, pod.Namespace, src.SecretName)
			if err != nil {
				return nil, err
			}
			optional := src.Optional != nil && *src.Optional
			if s == nil && !optional {
				return nil, configError{fmt.Errorf("secret %q not found", src.SecretName)}
			}
			data := map[string][]byte{}
			if s != nil {
				data = s.Data
			}
			p := filepath.Join(dir, "secret", vol.Name)
			if err := writeFiles(p, data, src.Items, src.DefaultMode); err != nil {
				return nil, err
			}
			paths[vol.Name] = p
		default:
			return nil, configError{fmt.Errorf("volume %q: only emptyDir, hostPath, configMap and secret are supported", vol.Name)}
		}
	}
	return paths, nil
}

func writeFiles(dir string, data map[string][]byte, items []v1.KeyToPath, defaultMode *int32) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode)
	}
	want := map[string][]byte{}
	modes := map[string]os.FileMode{}
	if len(items) == 0 {
		for k, v := range data {
			want[k], modes[k] = v, mode
		}
	} else {
		for _, it := range items {
			if v, ok := data[it.Key]; ok {
				want[it.Path], modes[it.Path] = v, mode
				if it.Mode != nil {
					modes[it.Path] = os.FileMode(*it.Mode)
				}
			}
		}
	}
	for name, v := range want {
		p := filepath.Join(dir, filepath.Clean("/"+name))
		if old, err := os.ReadFile(p); err == nil && string(old) == string(v) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		tmp := p + ".kubeish-tmp"
		if err := os.WriteFile(tmp, v, modes[name]); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	// Keys that went away.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if _, ok := want[e.Name()]; !ok && !e.IsDir() {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// Resources maps a container's limits (and requests) to cgroup settings:
// memory limit, CFS quota from the cpu limit, shares from the cpu request.
func Resources(c *v1.Container, cfg *runtime.ContainerConfig) {
	if m, ok := c.Resources.Limits[v1.ResourceMemory]; ok {
		cfg.MemoryLimit = m.Value()
	}
	if cpu, ok := c.Resources.Limits[v1.ResourceCPU]; ok && cpu.MilliValue() > 0 {
		cfg.CPUPeriod = 100000
		cfg.CPUQuota = cpu.MilliValue() * 100000 / 1000
		if cfg.CPUQuota < 1000 {
			cfg.CPUQuota = 1000
		}
	}
	req, ok := c.Resources.Requests[v1.ResourceCPU]
	if !ok {
		req, ok = c.Resources.Limits[v1.ResourceCPU]
	}
	if ok {
		shares := uint64(req.MilliValue() * 1024 / 1000)
		if shares < 2 {
			shares = 2
		}
		cfg.CPUShares = shares
	}
}
