package server

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	allVerbs    = metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	statusVerbs = metav1.Verbs{"get", "patch", "update"}
)

func jsonEncode(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

func (s *Server) serverAddresses(r *http.Request) []metav1.ServerAddressByClientCIDR {
	addr := r.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "443")
	}
	return []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: addr}}
}

func (s *Server) discoveryAPI(w http.ResponseWriter, r *http.Request) {
	v := &metav1.APIVersions{Versions: []string{"v1"}, ServerAddressByClientCIDRs: s.serverAddresses(r)}
	v.Kind = "APIVersions"
	s.writeObject(w, r, http.StatusOK, v)
}

// groups returns the named API groups, each with its one version.
func (s *Server) groups() []metav1.APIGroup {
	var out []metav1.APIGroup
	for _, gv := range s.res.GroupVersions() {
		if gv.Group == "" {
			continue
		}
		v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
		out = append(out, metav1.APIGroup{Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v})
	}
	az := metav1.GroupVersionForDiscovery{GroupVersion: authorizationGV.String(), Version: authorizationGV.Version}
	out = append(out, metav1.APIGroup{Name: authorizationGV.Group, Versions: []metav1.GroupVersionForDiscovery{az}, PreferredVersion: az})
	if s.cfg.Metrics != nil {
		v := metav1.GroupVersionForDiscovery{GroupVersion: metricsGV.String(), Version: metricsGV.Version}
		out = append(out, metav1.APIGroup{Name: metricsGV.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v})
	}
	// Kubernetes lists apps first; kubectl does not care, people reading do.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name == "apps" && out[j].Name != "apps" })
	return out
}

func (s *Server) discoveryGroups(w http.ResponseWriter, r *http.Request) {
	list := &metav1.APIGroupList{Groups: s.groups()}
	list.Kind, list.APIVersion = "APIGroupList", "v1"
	s.writeObject(w, r, http.StatusOK, list)
}

func (s *Server) discoveryGroup(group string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, g := range s.groups() {
			if g.Name == group {
				g.Kind, g.APIVersion = "APIGroup", "v1"
				s.writeObject(w, r, http.StatusOK, &g)
				return
			}
		}
		http.NotFound(w, r)
	}
}

// apiResources lists gv's resources and subresources as discovery shows them.
func (s *Server) apiResources(gv schema.GroupVersion) []metav1.APIResource {
	if gv == metricsGV && s.cfg.Metrics != nil {
		return metricsResources()
	}
	if gv == authorizationGV {
		return authorizationResources()
	}
	var out []metav1.APIResource
	for _, res := range s.res.All() {
		if res.GroupVersion() != gv {
			continue
		}
		out = append(out, metav1.APIResource{
			Name: res.Resource, SingularName: res.Singular, Namespaced: res.Namespaced, Kind: res.Kind,
			Verbs: allVerbs, ShortNames: res.ShortNames, Categories: res.Categories,
		})
		sub := func(name, kind string, verbs metav1.Verbs, group, version string) {
			out = append(out, metav1.APIResource{Name: res.Resource + "/" + name, Namespaced: res.Namespaced,
				Kind: kind, Verbs: verbs, Group: group, Version: version})
		}
		if res.Status {
			sub("status", res.Kind, statusVerbs, "", "")
		}
		if res.Scale {
			sub("scale", "Scale", statusVerbs, "autoscaling", "v1")
		}
		switch res.GroupResource() {
		case schema.GroupResource{Resource: "pods"}:
			sub("binding", "Binding", metav1.Verbs{"create"}, "", "")
			sub("log", "Pod", metav1.Verbs{"get"}, "", "")
		case schema.GroupResource{Resource: "namespaces"}:
			sub("finalize", "Namespace", metav1.Verbs{"update"}, "", "")
		}
	}
	return out
}

func (s *Server) discoveryResources(gv schema.GroupVersion) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		list := &metav1.APIResourceList{GroupVersion: gv.String(), APIResources: s.apiResources(gv)}
		list.Kind, list.APIVersion = "APIResourceList", "v1"
		s.writeObject(w, r, http.StatusOK, list)
	}
}
