package server

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Server-side printing: the Table a client gets for
// Accept: application/json;as=Table;v=v1;g=meta.k8s.io, with the columns
// kubectl shows for each kind (priority 1 columns are the -o wide ones).
// kubectl and kctl both print these, so the columns are defined once, here.

// includeObject is the ?includeObject= of a Table request.
type includeObject string

const (
	includeNone     includeObject = "None"
	includeMetadata includeObject = "Metadata"
	includeFull     includeObject = "Object"
)

func parseIncludeObject(q string) (includeObject, error) {
	switch v := includeObject(q); v {
	case "":
		return includeMetadata, nil
	case includeNone, includeMetadata, includeFull:
		return v, nil
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("includeObject %q is not None, Metadata or Object", q))
}

// printer is the columns of one kind and how to fill a row.
type printer struct {
	columns []metav1.TableColumnDefinition
	cells   func(obj runtime.Object, now time.Time) []any
}

func col(name, typ, desc string, priority int32) metav1.TableColumnDefinition {
	c := metav1.TableColumnDefinition{Name: name, Type: typ, Description: desc, Priority: priority}
	if name == "Name" {
		c.Format = "name"
	}
	return c
}

var (
	nameCol = col("Name", "string", "Name must be unique within a namespace.", 0)
	ageCol  = col("Age", "string", "CreationTimestamp is the time the object was created.", 0)
)

// age formats the time since t as kubectl does ("5m", "3d4h", "<unknown>").
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func none(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// printers maps a kind to its Table columns.
var printers = map[string]printer{
	"Pod": {
		columns: []metav1.TableColumnDefinition{
			nameCol,
			col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.", 0),
			col("Status", "string", "The aggregate status of the containers in this pod.", 0),
			col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
			ageCol,
			col("IP", "string", "IP address allocated to the pod.", 1),
			col("Node", "string", "Name of the node the pod is assigned to.", 1),
			col("Nominated Node", "string", "Name of the node the pod is nominated to.", 1),
			col("Readiness Gates", "string", "The readiness gates of the pod.", 1),
		},
		cells: func(obj runtime.Object, now time.Time) []any {
			p := obj.(*corev1.Pod)
			ready, total, restarts, lastRestart := 0, len(p.Spec.Containers), 0, time.Time{}
			for _, cs := range p.Status.ContainerStatuses {
				restarts += int(cs.RestartCount)
				if t := cs.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(lastRestart) {
					lastRestart = t.FinishedAt.Time
				}
				if cs.Ready && cs.State.Running != nil {
					ready++
				}
			}
			restartStr := strconv.Itoa(restarts)
			if restarts > 0 && !lastRestart.IsZero() {
				restartStr = fmt.Sprintf("%d (%s ago)", restarts, duration.HumanDuration(now.Sub(lastRestart)))
			}
			gates := "<none>"
			if n := len(p.Spec.ReadinessGates); n > 0 {
				trueGates := 0
				for _, g := range p.Spec.ReadinessGates {
					for _, c := range p.Status.Conditions {
						if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
							trueGates++
						}
					}
				}
				gates = fmt.Sprintf("%d/%d", trueGates, n)
			}
			return []any{p.Name, fmt.Sprintf("%d/%d", ready, total), PodStatusReason(p), restartStr, age(p.CreationTimestamp, now),
				none(p.Status.PodIP), none(p.Spec.NodeName), none(p.Status.NominatedNodeName), gates}
		},
	},
	"Service": {
		columns: []metav1.TableColumnDefinition{
			nameCol,
			col("Type", "string", "The type of the service.", 0),
			col("Cluster-IP", "string", "The IP address of the service.", 0),
			col("External-IP", "string", "The external IP addresses of the service.", 0),
			col("Port(s)", "string", "The ports the service exposes.", 0),
			ageCol,
			col("Selector", "string", "The label selector of the pods behind the service.", 1),
		},
		cells: func(obj runtime.Object, now time.Time) []any {
			s := obj.(*corev1.Service)
			ext := "<none>"
			switch {
			case len(s.Spec.ExternalIPs) > 0:
				ext = strings.Join(s.Spec.ExternalIPs, ",")
			case s.Spec.Type == corev1.ServiceTypeLoadBalancer:
				var ips []string
				for _, in := range s.Status.LoadBalancer.Ingress {
					ips = append(ips, in.IP+in.Hostname)
				}
				ext = "<pending>"
				if len(ips) > 0 {
					ext = strings.Join(ips, ",")
				}
			case s.Spec.Type == corev1.ServiceTypeExternalName:
				ext = s.Spec.ExternalName
			}
			var ports []string
			for _, p := range s.Spec.Ports {
				if p.NodePort != 0 {
					ports = append(ports, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
				} else {
					ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
				}
			}
			clusterIP := s.Spec.ClusterIP
			if clusterIP == "" {
				clusterIP = "<none>"
			}
			return []any{s.Name, string(s.Spec.Type), clusterIP, ext, none(strings.Join(ports, ",")), age(s.CreationTimestamp, now),
				none(labels.FormatLabels(s.Spec.Selector))}
		},
	},
	"Endpoints": {
		columns: []metav1.TableColumnDefinition{nameCol, col("Endpoints", "string", "Endpoints of the service.", 0), ageCol},
		cells: func(obj runtime.Object, now time.Time) []any {
			e := obj.(*corev1.Endpoints)
			var eps []string
			for _, ss := range e.Subsets {
				for _, a := range ss.Addresses {
					if len(ss.Ports) == 0 {
						eps = append(eps, a.IP)
					}
					for _, p := range ss.Ports {
						eps = append(eps, fmt.Sprintf("%s:%d", a.IP, p.Port))
					}
				}
			}
			return []any{e.Name, none(abbreviate(eps, 3)), age(e.CreationTimestamp, now)}
		},
	},
	"Node": {
		columns: []metav1.TableColumnDefinition{
			nameCol,
			col("Status", "string", "The status of the node.", 0),
			col("Roles", "string", "The roles of the node.", 0),
			ageCol,
			col("Version", "string", "Kubelet version reported by the node.", 0),
			col("Internal-IP", "string", "The node's internal IP address.", 1),
			col("External-IP", "string", "The node's external IP address.", 1),
			col("OS-Image", "string", "OS image reported by the node.", 1),
			col("Kernel-Version", "string", "Kernel version reported by the node.", 1),
			col("Container-Runtime", "string", "Container runtime and version reported by the node.", 1),
		},
		cells: func(obj runtime.Object, now time.Time) []any {
			n := obj.(*corev1.Node)
			status := "Unknown"
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					if c.Status == corev1.ConditionTrue {
						status = "Ready"
					} else {
						status = "NotReady"
					}
				}
			}
			if n.Spec.Unschedulable {
				status += ",SchedulingDisabled"
			}
			var roles []string
			for k := range n.Labels {
				if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
					roles = append(roles, r)
				}
			}
			sort.Strings(roles)
			addr := func(t corev1.NodeAddressType) string {
				for _, a := range n.Status.Addresses {
					if a.Type == t {
						return a.Address
					}
				}
				return "<none>"
			}
			info := n.Status.NodeInfo
			return []any{n.Name, status, none(strings.Join(roles, ",")), age(n.CreationTimestamp, now), info.KubeletVersion,
				addr(corev1.NodeInternalIP), addr(corev1.NodeExternalIP), none(info.OSImage), none(info.KernelVersion), none(info.ContainerRuntimeVersion)}
		},
	},
	"Namespace": {
		columns: []metav1.TableColumnDefinition{nameCol, col("Status", "string", "The status of the namespace.", 0), ageCol},
		cells: func(obj runtime.Object, now time.Time) []any {
			n := obj.(*corev1.Namespace)
			return []any{n.Name, string(n.Status.Phase), age(n.CreationTimestamp, now)}
		},
	},
	"ConfigMap": {
		columns: []metav1.TableColumnDefinition{nameCol, col("Data", "integer", "The number of data entries.", 0), ageCol},
		cells: func(obj runtime.Object, now time.Time) []any {
			c := obj.(*corev1.ConfigMap)
			return []any{c.Name, int64(len(c.Data) + len(c.BinaryData)), age(c.CreationTimestamp, now)}
		},
	},
	"Secret": {
		columns: []metav1.TableColumnDefinition{nameCol, col("Type", "string", "The type of the secret.", 0),
			col("Data", "integer", "The number of data entries.", 0), ageCol},
		cells: func(obj runtime.Object, now time.Time) []any {
			s := obj.(*corev1.Secret)
			return []any{s.Name, string(s.Type), int64(len(s.Data)), age(s.CreationTimestamp, now)}
		},
	},
	"Event": {
		columns: []metav1.TableColumnDefinition{
			col("Last Seen", "string", "The time since the event was last seen.", 0),
			col("Type", "string", "The type of the event.", 0),
			col("Reason", "string", "The reason of the event.", 0),
			col("Object", "string", "The object the event is about.", 0),
			col("Subobject", "string", "The part of the object the event is about.", 1),
			col("Source", "string", "The component that reported the event.", 1),
			col("Message", "string", "The message of the event.", 0),
			col("First Seen", "string", "The time since the event was first seen.", 1),
			col("Count", "string", "The number of times the event occurred.", 1),
			col("Name", "string", "The name of the event.", 1),
		},
		cells: func(obj runtime.Object, now time.Time) []any {
			e := obj.(*corev1.Event)
			last, first := EventTimes(e)
			source := e.Source.Component
			if source == "" {
				source = e.ReportingController
			}
			if e.Source.Host != "" {
				source += ", " + e.Source.Host
			}
			count := e.Count
			if count == 0 {
				count = 1
			}
			object := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
			return []any{age(last, now), e.Type, e.Reason, object, e.InvolvedObject.FieldPath, source,
				strings.TrimSpace(e.Message), age(first, now), strconv.Itoa(int(count)), e.Name}
		},
	},
	"Deployment": {
		columns: []metav1.TableColumnDefinition{
			nameCol,
			col("Ready", "string", "Number of the pods ready out of the desired replicas.", 0),
			col("Up-to-date", "integer", "Total number of non-terminated pods with the desired template spec.", 0),
			col("Available", "integer", "Total number of available pods (ready for at least minReadySeconds).", 0),
			ageCol,
			col("Containers", "string", "Names of each container in the template.", 1),
			col("Images", "string", "Images referenced by each container in the template.", 1),
			col("Selector", "string", "Label selector for pods.", 1),
		},
		cells: func(obj runtime.Object, now time.Time) []any {
			d := obj.(*appsv1.Deployment)
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			names, images := containers(d.Spec.Template.Spec.Containers)
			return []any{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, want), int64(d.Status.UpdatedReplicas),
				int64(d.Status.AvailableReplicas), age(d.CreationTimestamp, now), names, images, selector(d.Spec.Selector)}
		},
	},
	"ReplicaSet": {
		columns: []metav1.TableColumnDefinition{
			nameCol,
			col("Desired", "integer", "Number of desired pods.", 0),
			col("Current", "integer", "Number of actual pods.", 0),
			col("Ready", "integer", "Number of ready pods.", 0),
			ageCol,
			col("Containers", "string", "Names of each container in the template.", 1),
			col("Images", "string", "Images referenced by each container in the template.", 1),
			col("Selector", "string", "Label selector for pods.", 1),
		},
		cells: func(obj runtime.Object, now time.Time) []any {
			r := obj.(*appsv1.ReplicaSet)
			want := int32(1)
			if r.Spec.Replicas != nil {
				want = *r.Spec.Replicas
			}
			names, images := containers(r.Spec.Template.Spec.Containers)
			return []any{r.Name, int64(want), int64(r.Status.Replicas), int64(r.Status.ReadyReplicas), age(r.CreationTimestamp, now),
				names, images, selector(r.Spec.Selector)}
		},
	},
	"Lease": {
		columns: []metav1.TableColumnDefinition{nameCol, col("Holder", "string", "The holder of the lease.", 0), ageCol},
		cells: func(obj runtime.Object, now time.Time) []any {
			l := obj.(*coordinationv1.Lease)
			holder := "<none>"
			if l.Spec.HolderIdentity != nil {
				holder = *l.Spec.HolderIdentity
			}
			return []any{l.Name, holder, age(l.CreationTimestamp, now)}
		},
	},
	"EndpointSlice": {
		columns: []metav1.TableColumnDefinition{nameCol, col("AddressType", "string", "The type of address of the endpoints.", 0),
			col("Ports", "string", "The ports of the endpoints.", 0), col("Endpoints", "string", "The endpoint addresses.", 0), ageCol},
		cells: func(obj runtime.Object, now time.Time) []any {
			s := obj.(*discoveryv1.EndpointSlice)
			var ports, addrs []string
			for _, p := range s.Ports {
				if p.Port != nil {
					ports = append(ports, strconv.Itoa(int(*p.Port)))
				}
			}
			for _, e := range s.Endpoints {
				addrs = append(addrs, e.Addresses...)
			}
			p := "<unset>"
			if len(ports) > 0 {
				p = strings.Join(ports, ",")
			}
			a := "<unset>"
			if len(addrs) > 0 {
				a = abbreviate(addrs, 3)
			}
			return []any{s.Name, string(s.AddressType), p, a, age(s.CreationTimestamp, now)}
		},
	},
	"HorizontalPodAutoscaler": {
		columns: []metav1.TableColumnDefinition{nameCol, col("Reference", "string", "The target of the autoscaler.", 0),
			col("Targets", "string", "Current and target metric values.", 0), col("MinPods", "string", "Lower replica limit.", 0),
			col("MaxPods", "integer", "Upper replica limit.", 0), col("Replicas", "integer", "Current replicas.", 0), ageCol},
		cells: func(obj runtime.Object, now time.Time) []any {
			h := obj.(*autoscalingv2.HorizontalPodAutoscaler)
			ref := h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name
			targets := hpaTargets(h.Spec.Metrics, h.Status.CurrentMetrics)
			minPods := "<unset>"
			if h.Spec.MinReplicas != nil {
				minPods = strconv.Itoa(int(*h.Spec.MinReplicas))
			}
			return []any{h.Name, ref, targets, minPods, int64(h.Spec.MaxReplicas), int64(h.Status.CurrentReplicas), age(h.CreationTimestamp, now)}
		},
	},
}

// hpaTargets is the TARGETS cell of an autoscaler as kubectl prints it:
// "cpu: 45%/80%" for a utilization, "memory: 120Mi/200Mi" for an average
// value, <unknown> before the first measurement, at most three metrics.
func hpaTargets(specs []autoscalingv2.MetricSpec, statuses []autoscalingv2.MetricStatus) string {
	if len(specs) == 0 {
		return "<none>"
	}
	var list []string
	for i, spec := range specs {
		if spec.Type != autoscalingv2.ResourceMetricSourceType || spec.Resource == nil {
			list = append(list, "<unknown>/<unknown>")
			continue
		}
		var cur *autoscalingv2.MetricValueStatus
		if i < len(statuses) && statuses[i].Type == autoscalingv2.ResourceMetricSourceType && statuses[i].Resource != nil {
			cur = &statuses[i].Resource.Current
		}
		current := "<unknown>"
		if t := spec.Resource.Target; t.AverageValue != nil {
			if cur != nil && cur.AverageValue != nil {
				current = cur.AverageValue.String()
			}
			list = append(list, fmt.Sprintf("%s: %s/%s", spec.Resource.Name, current, t.AverageValue.String()))
			continue
		}
		if cur != nil && cur.AverageUtilization != nil {
			current = fmt.Sprintf("%d%%", *cur.AverageUtilization)
		}
		target := "<auto>"
		if u := spec.Resource.Target.AverageUtilization; u != nil {
			target = fmt.Sprintf("%d%%", *u)
		}
		list = append(list, fmt.Sprintf("%s: %s/%s", spec.Resource.Name, current, target))
	}
	if len(list) > 3 {
		return fmt.Sprintf("%s + %d more...", strings.Join(list[:3], ", "), len(list)-3)
	}
	return strings.Join(list, ", ")
}

var defaultPrinter = printer{
	columns: []metav1.TableColumnDefinition{nameCol, ageCol},
	cells: func(obj runtime.Object, now time.Time) []any {
		m := accessor(obj)
		return []any{m.GetName(), age(m.GetCreationTimestamp(), now)}
	},
}

func containers(cs []corev1.Container) (string, string) {
	var names, images []string
	for _, c := range cs {
		names = append(names, c.Name)
		images = append(images, c.Image)
	}
	return strings.Join(names, ","), strings.Join(images, ",")
}

func selector(s *metav1.LabelSelector) string {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return "<invalid>"
	}
	if sel.Empty() {
		return "<none>"
	}
	return sel.String()
}

// abbreviate joins the first max items and says how many more there are,
// as kubectl does for endpoints.
func abbreviate(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, ",")
	}
	return fmt.Sprintf("%s + %d more...", strings.Join(items[:max], ","), len(items)-max)
}

// EventTimes returns when an event was last and first seen, falling back
// to eventTime and creationTimestamp for events that set neither.
func EventTimes(e *corev1.Event) (last, first metav1.Time) {
	last, first = e.LastTimestamp, e.FirstTimestamp
	if first.IsZero() {
		first = metav1.Time{Time: e.EventTime.Time}
	}
	if first.IsZero() {
		first = e.CreationTimestamp
	}
	if last.IsZero() {
		if e.Series != nil {
			last = metav1.Time{Time: e.Series.LastObservedTime.Time}
		} else {
			last = first
		}
	}
	return last, first
}

// PodStatusReason is the STATUS kubectl shows for a pod: the phase, or the
// reason a container is waiting or terminated, or Terminating.
func PodStatusReason(p *corev1.Pod) string {
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonSchedulingGated {
			reason = corev1.PodReasonSchedulingGated
		}
	}
	initializing := false
	for i, cs := range p.Status.InitContainerStatuses {
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case cs.State.Terminated != nil:
			if cs.State.Terminated.Reason != "" {
				reason = "Init:" + cs.State.Terminated.Reason
			} else if cs.State.Terminated.Signal != 0 {
				reason = fmt.Sprintf("Init:Signal:%d", cs.State.Terminated.Signal)
			} else {
				reason = fmt.Sprintf("Init:ExitCode:%d", cs.State.Terminated.ExitCode)
			}
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + cs.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
		initializing = true
		break
	}
	if !initializing {
		hasRunning := false
		for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
			cs := p.Status.ContainerStatuses[i]
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				reason = cs.State.Terminated.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Signal != 0:
				reason = fmt.Sprintf("Signal:%d", cs.State.Terminated.Signal)
			case cs.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
			case cs.Ready && cs.State.Running != nil:
				hasRunning = true
			}
		}
		if reason == "Completed" && hasRunning {
			reason = "NotReady"
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					reason = string(corev1.PodRunning)
				}
			}
		}
	}
	if p.DeletionTimestamp != nil {
		if p.Status.Reason == "NodeLost" {
			reason = string(corev1.PodUnknown)
		} else {
			reason = "Terminating"
		}
	}
	return reason
}

// toTable builds the Table of objs, which are all of res's kind.
func (s *Server) toTable(kind string, objs []runtime.Object, inc includeObject, now time.Time) (*metav1.Table, error) {
	p, ok := printers[kind]
	if !ok {
		p, ok = metricsPrinters[kind]
	}
	if !ok {
		p, ok = rbacPrinters[kind]
	}
	if !ok {
		p = defaultPrinter
	}
	t := &metav1.Table{ColumnDefinitions: p.columns, Rows: []metav1.TableRow{}}
	t.Kind, t.APIVersion = "Table", "meta.k8s.io/v1"
	for _, obj := range objs {
		row := metav1.TableRow{Cells: p.cells(obj, now)}
		switch inc {
		case includeMetadata:
			m := accessor(obj)
			pm := &metav1.PartialObjectMetadata{}
			pm.APIVersion, pm.Kind = "meta.k8s.io/v1", "PartialObjectMetadata"
			pm.ObjectMeta = *metaCopy(m)
			raw, err := json.Marshal(pm)
			if err != nil {
				return nil, err
			}
			row.Object.Raw = raw
		case includeFull:
			if err := s.codecs.setKind(obj); err != nil {
				return nil, err
			}
			raw, err := json.Marshal(obj)
			if err != nil {
				return nil, err
			}
			row.Object.Raw = raw
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

func metaCopy(m metav1.Object) *metav1.ObjectMeta {
	return &metav1.ObjectMeta{
		Name: m.GetName(), GenerateName: m.GetGenerateName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
		ResourceVersion: m.GetResourceVersion(), Generation: m.GetGeneration(), CreationTimestamp: m.GetCreationTimestamp(),
		DeletionTimestamp: m.GetDeletionTimestamp(), DeletionGracePeriodSeconds: m.GetDeletionGracePeriodSeconds(),
		Labels: m.GetLabels(), Annotations: m.GetAnnotations(), OwnerReferences: m.GetOwnerReferences(),
		Finalizers: m.GetFinalizers(),
	}
}
