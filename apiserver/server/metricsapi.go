package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/kubeish/kubeish/apiserver/auth/authz"
)

// MetricsSource is what the resource metrics API (metrics.k8s.io/v1beta1)
// serves: the latest usage of nodes and pods, held in memory (see
// apiserver/metricsapi). Lists are sorted and their items are the
// caller's to keep; a nil selector matches everything.
type MetricsSource interface {
	Nodes(sel labels.Selector) []metricsv1beta1.NodeMetrics
	Node(name string) (*metricsv1beta1.NodeMetrics, bool)
	// Pods lists the pods of namespace ns, all namespaces when ns is "".
	Pods(ns string, sel labels.Selector) []metricsv1beta1.PodMetrics
	Pod(ns, name string) (*metricsv1beta1.PodMetrics, bool)
}

var (
	metricsGV          = metricsv1beta1.SchemeGroupVersion
	nodeMetricsGR      = schema.GroupResource{Group: metricsGV.Group, Resource: "nodemetrics"}
	podMetricsGR       = schema.GroupResource{Group: metricsGV.Group, Resource: "podmetrics"}
	metricsReadOnlyVrb = metav1.Verbs{"get", "list"}
)

// metricsResources is the discovery of metrics.k8s.io/v1beta1, as
// metrics-server registers it.
func metricsResources() []metav1.APIResource {
	return []metav1.APIResource{
		{Name: "nodes", SingularName: "", Namespaced: false, Kind: "NodeMetrics", Verbs: metricsReadOnlyVrb},
		{Name: "pods", SingularName: "", Namespaced: true, Kind: "PodMetrics", Verbs: metricsReadOnlyVrb},
	}
}

// metricsRoutes serves the resource metrics API when a source is set.
func (s *Server) metricsRoutes(r *mux.Router) {
	base := "/apis/" + metricsGV.String()
	r.Handle("/apis/"+metricsGV.Group, s.nonResource(s.discoveryGroup(metricsGV.Group)))
	r.Handle(base, s.nonResource(s.discoveryResources(metricsGV)))
	r.HandleFunc(base+"/nodes", s.metricsHandler("nodes", "LIST", s.listNodeMetrics))
	r.HandleFunc(base+"/nodes/{name}", s.metricsHandler("nodes", "GET", s.getNodeMetrics))
	r.HandleFunc(base+"/pods", s.metricsHandler("pods", "LIST", s.listPodMetrics))
	r.HandleFunc(base+"/namespaces/{namespace}/pods", s.metricsHandler("pods", "LIST", s.listPodMetrics))
	r.HandleFunc(base+"/namespaces/{namespace}/pods/{name}", s.metricsHandler("pods", "GET", s.getPodMetrics))
}

// metricsHandler instruments a read of the metrics API and refuses the
// verbs it does not have (it is read-only and has no watch).
func (s *Server) metricsHandler(resource, verb string, h func(w http.ResponseWriter, r *http.Request, ns, name string) error) http.HandlerFunc {
	gr := nodeMetricsGR
	if resource == "pods" {
		gr = podMetricsGR
	}
	return func(w http.ResponseWriter, r *http.Request) {
		s.instrument(w, r, resource, "", func(w http.ResponseWriter) (string, error) {
			if r.Method != http.MethodGet {
				return r.Method, apierrors.NewMethodNotSupported(gr, strings.ToLower(r.Method))
			}
			if q := r.URL.Query().Get("watch"); q == "true" || q == "1" {
				return "WATCH", apierrors.NewMethodNotSupported(gr, "watch")
			}
			vars := mux.Vars(r)
			at := authz.Attributes{Verb: strings.ToLower(verb), APIGroup: metricsGV.Group, Resource: resource,
				Namespace: vars["namespace"], Name: vars["name"], ResourceRequest: true}
			if err := s.authorize(r.Context(), &at); err != nil {
				return verb, err
			}
			return verb, h(w, r, vars["namespace"], vars["name"])
		})
	}
}

// metricsSelectors parses labelSelector and fieldSelector (metadata.name,
// metadata.namespace) of a metrics list.
func metricsSelectors(r *http.Request) (labels.Selector, fields.Selector, error) {
	q := r.URL.Query()
	ls, fs := labels.Everything(), fields.Everything()
	var err error
	if v := q.Get("labelSelector"); v != "" {
		if ls, err = labels.Parse(v); err != nil {
			return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("unable to parse labelSelector %q: %v", v, err))
		}
	}
	if v := q.Get("fieldSelector"); v != "" {
		if fs, err = fields.ParseSelector(v); err != nil {
			return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("unable to parse fieldSelector %q: %v", v, err))
		}
		for _, req := range fs.Requirements() {
			if req.Field != "metadata.name" && req.Field != "metadata.namespace" {
				return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
		}
	}
	return ls, fs, nil
}

func metaFields(m *metav1.ObjectMeta) fields.Set {
	return fields.Set{"metadata.name": m.Name, "metadata.namespace": m.Namespace}
}

func (s *Server) listNodeMetrics(w http.ResponseWriter, r *http.Request, _, _ string) error {
	ls, fs, err := metricsSelectors(r)
	if err != nil {
		return err
	}
	list := &metricsv1beta1.NodeMetricsList{Items: []metricsv1beta1.NodeMetrics{}}
	for _, m := range s.cfg.Metrics.Nodes(ls) {
		if fs.Matches(metaFields(&m.ObjectMeta)) {
			list.Items = append(list.Items, m)
		}
	}
	items := make([]runtime.Object, len(list.Items))
	for i := range list.Items {
		items[i] = &list.Items[i]
	}
	return s.writeMetrics(w, r, "NodeMetrics", list, items)
}

func (s *Server) getNodeMetrics(w http.ResponseWriter, r *http.Request, _, name string) error {
	m, ok := s.cfg.Metrics.Node(name)
	if !ok {
		return apierrors.NewNotFound(nodeMetricsGR, name)
	}
	return s.writeMetrics(w, r, "NodeMetrics", m, []runtime.Object{m})
}

func (s *Server) listPodMetrics(w http.ResponseWriter, r *http.Request, ns, _ string) error {
	ls, fs, err := metricsSelectors(r)
	if err != nil {
		return err
	}
	list := &metricsv1beta1.PodMetricsList{Items: []metricsv1beta1.PodMetrics{}}
	for _, m := range s.cfg.Metrics.Pods(ns, ls) {
		if fs.Matches(metaFields(&m.ObjectMeta)) {
			list.Items = append(list.Items, m)
		}
	}
	items := make([]runtime.Object, len(list.Items))
	for i := range list.Items {
		items[i] = &list.Items[i]
	}
	return s.writeMetrics(w, r, "PodMetrics", list, items)
}

func (s *Server) getPodMetrics(w http.ResponseWriter, r *http.Request, ns, name string) error {
	m, ok := s.cfg.Metrics.Pod(ns, name)
	if !ok {
		return apierrors.NewNotFound(podMetricsGR, name)
	}
	return s.writeMetrics(w, r, "PodMetrics", m, []runtime.Object{m})
}

// writeMetrics answers with obj, or the Table of items when asked for one.
func (s *Server) writeMetrics(w http.ResponseWriter, r *http.Request, kind string, obj runtime.Object, items []runtime.Object) error {
	acc, err := s.codecs.negotiate(r, true)
	if err != nil {
		return err
	}
	if !acc.table {
		s.writeWith(w, acc.info, http.StatusOK, obj)
		return nil
	}
	inc, err := parseIncludeObject(r.URL.Query().Get("includeObject"))
	if err != nil {
		return err
	}
	t, err := s.toTable(kind, items, inc, time.Now())
	if err != nil {
		return err
	}
	s.writeWith(w, acc.info, http.StatusOK, t)
	return nil
}

// metricsPrinters are the Table columns of kubectl get nodemetrics /
// podmetrics, as metrics-server prints them.
var metricsPrinters = map[string]printer{
	"NodeMetrics": {
		columns: []metav1.TableColumnDefinition{nameCol,
			col("CPU", "string", "CPU usage of the node over the window.", 0),
			col("Memory", "string", "Memory (working set) of the node.", 0),
			col("Window", "string", "The window the usage was measured over.", 0)},
		cells: func(obj runtime.Object, _ time.Time) []any {
			m := obj.(*metricsv1beta1.NodeMetrics)
			return []any{m.Name, millicores(m.Usage.Cpu()), quantityString(m.Usage.Memory()), m.Window.Duration.String()}
		},
	},
	"PodMetrics": {
		columns: []metav1.TableColumnDefinition{nameCol,
			col("CPU", "string", "CPU usage of the pod's containers over the window.", 0),
			col("Memory", "string", "Memory (working set) of the pod's containers.", 0),
			col("Window", "string", "The window the usage was measured over.", 0)},
		cells: func(obj runtime.Object, _ time.Time) []any {
			m := obj.(*metricsv1beta1.PodMetrics)
			var cpu, mem resource.Quantity
			for _, c := range m.Containers {
				cpu.Add(*c.Usage.Cpu())
				mem.Add(*c.Usage.Memory())
			}
			return []any{m.Name, millicores(&cpu), quantityString(&mem), m.Window.Duration.String()}
		},
	},
}

func millicores(q *resource.Quantity) string {
	if q == nil {
		return "0"
	}
	return fmt.Sprintf("%dm", q.MilliValue())
}

func quantityString(q *resource.Quantity) string {
	if q == nil {
		return "0"
	}
	return q.String()
}
