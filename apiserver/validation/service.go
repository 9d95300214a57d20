package validation

import (
	"fmt"
	"net"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	// serviceTypes kubeish serves; LoadBalancer has no implementation.
	serviceTypes      = []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeExternalName, corev1.ServiceTypeNodePort}
	sessionAffinities = []corev1.ServiceAffinity{corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone}
	ipFamilyPolicies  = []corev1.IPFamilyPolicy{corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack, corev1.IPFamilyPolicySingleStack}
	trafficPolicies   = []corev1.ServiceInternalTrafficPolicy{corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal}
	externalPolicies  = []corev1.ServiceExternalTrafficPolicy{corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal}
	addressTypes      = []discoveryv1.AddressType{discoveryv1.AddressTypeFQDN, discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}
)

const (
	maxClientIPTimeout = 86400 // a day, as Kubernetes
	noDualStackMsg     = "this cluster is not configured for dual-stack services"
	maxSliceEndpoints  = 1000
	maxSliceAddresses  = 100
	maxSlicePorts      = 100
)

func validateService(svc *corev1.Service) field.ErrorList {
	errs := validateMeta(&svc.ObjectMeta, true, apivalidation.NameIsDNSLabel)
	spec := &svc.Spec
	headless := spec.ClusterIP == corev1.ClusterIPNone

	errs = append(errs, oneOf(specPath.Child("type"), spec.Type, serviceTypes, "")...)

	if spec.Type == corev1.ServiceTypeExternalName {
		if spec.ClusterIP != "" {
			errs = append(errs, field.Forbidden(specPath.Child("clusterIP"), "may not be set for ExternalName services"))
		} else if len(spec.ClusterIPs) > 0 {
			errs = append(errs, field.Forbidden(specPath.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if len(spec.IPFamilies) > 0 {
			errs = append(errs, field.Forbidden(specPath.Child("ipFamilies"), "may not be set for ExternalName services"))
		}
		if spec.IPFamilyPolicy != nil {
			errs = append(errs, field.Forbidden(specPath.Child("ipFamilyPolicy"), "may not be set for ExternalName services"))
		}
		// A trailing dot marks the name as fully qualified.
		if cname := strings.TrimSuffix(spec.ExternalName, "."); cname == "" {
			errs = append(errs, field.Required(specPath.Child("externalName"), ""))
		} else {
			errs = append(errs, invalids(specPath.Child("externalName"), spec.ExternalName, validation.IsDNS1123Subdomain(cname))...)
		}
	} else {
		errs = append(errs, validateClusterIPs(spec)...)
	}

	if len(spec.Ports) == 0 && !headless && spec.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Required(specPath.Child("ports"), ""))
	}
	errs = append(errs, validateServicePorts(spec)...)

	errs = append(errs, metav1validation.ValidateLabels(spec.Selector, specPath.Child("selector"))...)

	affinity := oneOf(specPath.Child("sessionAffinity"), spec.SessionAffinity, sessionAffinities, "")
	errs = append(errs, affinity...)
	switch {
	case affinity != nil:
	case spec.SessionAffinity == corev1.ServiceAffinityNone && spec.SessionAffinityConfig != nil:
		errs = append(errs, field.Invalid(specPath.Child("sessionAffinityConfig"), omit, "must not be set when session affinity is None"))
	case spec.SessionAffinity == corev1.ServiceAffinityClientIP:
		cp := specPath.Child("sessionAffinityConfig", "clientIP", "timeoutSeconds")
		c := spec.SessionAffinityConfig
		if c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
			errs = append(errs, field.Required(cp, "when session affinity type is ClientIP"))
		} else if t := *c.ClientIP.TimeoutSeconds; t <= 0 || t > maxClientIPTimeout {
			errs = append(errs, field.Invalid(cp, t, fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPTimeout)))
		}
	}

	for i, ip := range spec.ExternalIPs {
		errs = append(errs, validation.IsValidIPForLegacyField(specPath.Child("externalIPs").Index(i), ip, true, nil)...)
	}

	if p := spec.InternalTrafficPolicy; p == nil {
		if spec.Type == corev1.ServiceTypeClusterIP || spec.Type == corev1.ServiceTypeNodePort {
			errs = append(errs, field.Required(specPath.Child("internalTrafficPolicy"), ""))
		}
	} else if !slices.Contains(trafficPolicies, *p) {
		errs = append(errs, field.NotSupported(specPath.Child("internalTrafficPolicy"), *p, trafficPolicies))
	}
	etp := specPath.Child("externalTrafficPolicy")
	switch {
	case hasNodePorts(spec) && spec.ExternalTrafficPolicy == "":
		errs = append(errs, field.Required(etp, ""))
	case !hasNodePorts(spec) && spec.ExternalTrafficPolicy != "":
		errs = append(errs, field.Invalid(etp, spec.ExternalTrafficPolicy, "may only be set for externally-accessible services"))
	case spec.ExternalTrafficPolicy != "" && !slices.Contains(externalPolicies, spec.ExternalTrafficPolicy):
		errs = append(errs, field.NotSupported(etp, spec.ExternalTrafficPolicy, externalPolicies))
	}

	// The load balancer fields, when the type is not LoadBalancer.
	if spec.Type != corev1.ServiceTypeLoadBalancer {
		lbOnly := "may only be used when `type` is 'LoadBalancer'"
		if spec.AllocateLoadBalancerNodePorts != nil {
			errs = append(errs, field.Forbidden(specPath.Child("allocateLoadBalancerNodePorts"), lbOnly))
		}
		if spec.LoadBalancerClass != nil {
			errs = append(errs, field.Forbidden(specPath.Child("loadBalancerClass"), lbOnly))
		}
		if len(spec.LoadBalancerSourceRanges) > 0 {
			errs = append(errs, field.Forbidden(specPath.Child("loadBalancerSourceRanges"), lbOnly))
		}
		if spec.HealthCheckNodePort != 0 {
			errs = append(errs, field.Forbidden(specPath.Child("healthCheckNodePort"), lbOnly))
		}
	}
	return errs
}

// validateClusterIPs: "" (to be allocated), "None" (headless) or one IPv4
// address, mirrored by clusterIPs; kubeish serves single-stack IPv4.
func validateClusterIPs(spec *corev1.ServiceSpec) field.ErrorList {
	var errs field.ErrorList
	ipPath := specPath.Child("clusterIP")
	switch ip := spec.ClusterIP; {
	case ip == "":
	case ip == corev1.ClusterIPNone:
		if spec.Type == corev1.ServiceTypeNodePort {
			errs = append(errs, field.Invalid(ipPath, ip, "may not be set to 'None' for NodePort services"))
		}
	default:
		if parsed := net.ParseIP(ip); parsed == nil || parsed.To4() == nil {
			errs = append(errs, field.Invalid(ipPath, ip, "must be empty, 'None', or a valid IPv4 address"))
		} else {
			errs = append(errs, validation.IsValidIPForLegacyField(ipPath, ip, true, nil)...)
		}
	}
	ipsPath := specPath.Child("clusterIPs")
	switch {
	case len(spec.ClusterIPs) > 1:
		errs = append(errs, field.Invalid(ipsPath, spec.ClusterIPs, noDualStackMsg))
	case len(spec.ClusterIPs) == 1 && spec.ClusterIPs[0] != spec.ClusterIP:
		errs = append(errs, field.Invalid(ipsPath.Index(0), spec.ClusterIPs[0], "must be same as clusterIP"))
	}
	if p := spec.IPFamilyPolicy; p != nil {
		pp := specPath.Child("ipFamilyPolicy")
		switch {
		case !slices.Contains(ipFamilyPolicies, *p):
			errs = append(errs, field.NotSupported(pp, *p, ipFamilyPolicies))
		case *p == corev1.IPFamilyPolicyRequireDualStack:
			errs = append(errs, field.Invalid(pp, *p, noDualStackMsg))
		}
	}
	for i, f := range spec.IPFamilies {
		if f != corev1.IPv4Protocol {
			errs = append(errs, field.NotSupported(specPath.Child("ipFamilies").Index(i), f, []corev1.IPFamily{corev1.IPv4Protocol}))
		}
	}
	if len(spec.IPFamilies) > 1 {
		errs = append(errs, field.Invalid(specPath.Child("ipFamilies"), spec.IPFamilies, noDualStackMsg))
	}
	return errs
}

// hasNodePorts: the types that are reachable on every node's ports.
func hasNodePorts(spec *corev1.ServiceSpec) bool {
	return spec.Type == corev1.ServiceTypeNodePort || spec.Type == corev1.ServiceTypeLoadBalancer
}

func validateServicePorts(spec *corev1.ServiceSpec) field.ErrorList {
	var errs field.ErrorList
	at := specPath.Child("ports")
	names := sets.New[string]()
	type key struct {
		proto corev1.Protocol
		port  int32
	}
	ports, nodePorts := map[key]bool{}, map[key]bool{}
	for i, sp := range spec.Ports {
		p := at.Index(i)
		if len(spec.Ports) > 1 && sp.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		} else if sp.Name != "" {
			if msgs := validation.IsDNS1123Label(sp.Name); len(msgs) > 0 {
				errs = append(errs, invalids(p.Child("name"), sp.Name, msgs)...)
			} else if names.Has(sp.Name) {
				errs = append(errs, field.Duplicate(p.Child("name"), sp.Name))
			} else {
				names.Insert(sp.Name)
			}
		}
		errs = append(errs, invalids(p.Child("port"), sp.Port, validation.IsValidPortNum(int(sp.Port)))...)
		errs = append(errs, validateProtocol(sp.Protocol, p.Child("protocol"))...)
		errs = append(errs, validatePortNumOrName(sp.TargetPort, p.Child("targetPort"))...)
		if sp.AppProtocol != nil {
			errs = append(errs, metav1validation.ValidateLabelName(*sp.AppProtocol, p.Child("appProtocol"))...)
		}
		k := key{sp.Protocol, sp.Port}
		if ports[k] {
			errs = append(errs, field.Duplicate(p, fmt.Sprintf("%d/%s", sp.Port, sp.Protocol)))
		}
		ports[k] = true
		if sp.NodePort == 0 {
			continue
		}
		np := p.Child("nodePort")
		if !hasNodePorts(spec) {
			errs = append(errs, field.Forbidden(np, fmt.Sprintf("may not be used when `type` is '%s'", spec.Type)))
			continue
		}
		errs = append(errs, invalids(np, sp.NodePort, validation.IsValidPortNum(int(sp.NodePort)))...)
		nk := key{sp.Protocol, sp.NodePort}
		if nodePorts[nk] {
			errs = append(errs, field.Duplicate(np, sp.NodePort))
		}
		nodePorts[nk] = true
	}
	return errs
}

// serviceForUpdate returns the Service to validate for an update of old
// into svc: type-dependent fields that the update kept from old although
// svc's type no longer has them (its clusterIP on becoming ExternalName,
// its nodePorts and externalTrafficPolicy on leaving NodePort) are
// tolerated, as Kubernetes drops them. The allocator releases the
// addresses and ports.
func serviceForUpdate(svc, old *corev1.Service) *corev1.Service {
	out := svc
	cp := func() {
		if out == svc {
			out = svc.DeepCopy()
		}
	}
	s, o := &svc.Spec, &old.Spec
	if s.Type == corev1.ServiceTypeExternalName {
		if s.ClusterIP != "" && s.ClusterIP == o.ClusterIP {
			cp()
			out.Spec.ClusterIP = ""
		}
		if len(s.ClusterIPs) > 0 && equality.Semantic.DeepEqual(s.ClusterIPs, o.ClusterIPs) {
			cp()
			out.Spec.ClusterIPs = nil
		}
		if len(s.IPFamilies) > 0 && equality.Semantic.DeepEqual(s.IPFamilies, o.IPFamilies) {
			cp()
			out.Spec.IPFamilies = nil
		}
		if s.IPFamilyPolicy != nil && equality.Semantic.DeepEqual(s.IPFamilyPolicy, o.IPFamilyPolicy) {
			cp()
			out.Spec.IPFamilyPolicy = nil
		}
	}
	if !hasNodePorts(s) {
		if s.ExternalTrafficPolicy != "" && s.ExternalTrafficPolicy == o.ExternalTrafficPolicy {
			cp()
			out.Spec.ExternalTrafficPolicy = ""
		}
		for i, p := range s.Ports {
			if p.NodePort != 0 && slices.ContainsFunc(o.Ports, func(op corev1.ServicePort) bool { return op.NodePort == p.NodePort }) {
				cp()
				out.Spec.Ports[i].NodePort = 0
			}
		}
	}
	return out
}

// validateServiceUpdate: the cluster IP may not change once set, but
// between ExternalName and the other types. An empty one keeps old's.
func validateServiceUpdate(svc, old *corev1.Service) field.ErrorList {
	if svc.Spec.Type == corev1.ServiceTypeExternalName || old.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	ip, oldIP := svc.Spec.ClusterIP, old.Spec.ClusterIP
	switch {
	case oldIP == "", ip == oldIP:
		return nil
	case ip == "" && oldIP != corev1.ClusterIPNone:
		// The allocator keeps old's.
		return nil
	}
	return field.ErrorList{field.Invalid(specPath.Child("clusterIP"), ip, "field is immutable")}
}

func validateServiceStatus(svc *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	at := field.NewPath("status", "loadBalancer", "ingress")
	for i, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			errs = append(errs, validation.IsValidIPForLegacyField(at.Index(i).Child("ip"), ing.IP, true, nil)...)
		}
		if ing.Hostname != "" {
			errs = append(errs, invalids(at.Index(i).Child("hostname"), ing.Hostname, validation.IsDNS1123Subdomain(ing.Hostname))...)
		}
	}
	return errs
}

// --- Endpoints and EndpointSlices ----------------------------------------

func validateEndpoints(ep *corev1.Endpoints) field.ErrorList {
	errs := validateMeta(&ep.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	at := field.NewPath("subsets")
	for i, ss := range ep.Subsets {
		p := at.Index(i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			errs = append(errs, field.Required(p, "must specify `addresses` or `notReadyAddresses`"))
		}
		for j := range ss.Addresses {
			errs = append(errs, validateEndpointAddress(&ss.Addresses[j], p.Child("addresses").Index(j))...)
		}
		for j := range ss.NotReadyAddresses {
			errs = append(errs, validateEndpointAddress(&ss.NotReadyAddresses[j], p.Child("notReadyAddresses").Index(j))...)
		}
		names := sets.New[string]()
		for j, port := range ss.Ports {
			pp := p.Child("ports").Index(j)
			if len(ss.Ports) > 1 && port.Name == "" {
				errs = append(errs, field.Required(pp.Child("name"), ""))
			} else if port.Name != "" {
				if msgs := validation.IsDNS1123Label(port.Name); len(msgs) > 0 {
					errs = append(errs, invalids(pp.Child("name"), port.Name, msgs)...)
				} else if names.Has(port.Name) {
					errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
				} else {
					names.Insert(port.Name)
				}
			}
			errs = append(errs, invalids(pp.Child("port"), port.Port, validation.IsValidPortNum(int(port.Port)))...)
			errs = append(errs, validateProtocol(port.Protocol, pp.Child("protocol"))...)
		}
	}
	return errs
}

func validateEndpointAddress(a *corev1.EndpointAddress, p *field.Path) field.ErrorList {
	errs := validateEndpointIP(a.IP, p.Child("ip"))
	if a.Hostname != "" {
		errs = append(errs, invalids(p.Child("hostname"), a.Hostname, validation.IsDNS1123Label(a.Hostname))...)
	}
	if a.NodeName != nil {
		errs = append(errs, invalids(p.Child("nodeName"), *a.NodeName, validation.IsDNS1123Subdomain(*a.NodeName))...)
	}
	return errs
}

// validateEndpointIP: an IP that can be an endpoint. Kubernetes also
// refuses loopback addresses; kubeish allows them, for its apiserver
// advertises 127.0.0.1 by default.
func validateEndpointIP(ip string, p *field.Path) field.ErrorList {
	if errs := validation.IsValidIPForLegacyField(p, ip, true, nil); len(errs) > 0 {
		return errs
	}
	parsed := net.ParseIP(ip)
	switch {
	case parsed.IsUnspecified():
		return field.ErrorList{field.Invalid(p, ip, fmt.Sprintf("may not be unspecified (%v)", ip))}
	case parsed.IsLinkLocalUnicast():
		return field.ErrorList{field.Invalid(p, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")}
	case parsed.IsLinkLocalMulticast():
		return field.ErrorList{field.Invalid(p, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")}
	}
	return nil
}

func validateEndpointSlice(s *discoveryv1.EndpointSlice) field.ErrorList {
	errs := validateMeta(&s.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	at := field.NewPath("addressType")
	switch {
	case s.AddressType == "":
		errs = append(errs, field.Required(at, ""))
	case !slices.Contains(addressTypes, s.AddressType):
		errs = append(errs, field.NotSupported(at, s.AddressType, addressTypes))
	}
	ep := field.NewPath("endpoints")
	if len(s.Endpoints) > maxSliceEndpoints {
		errs = append(errs, field.TooMany(ep, len(s.Endpoints), maxSliceEndpoints))
	}
	for i, e := range s.Endpoints {
		p := ep.Index(i)
		ap := p.Child("addresses")
		switch {
		case len(e.Addresses) == 0:
			errs = append(errs, field.Required(ap, "must contain at least 1 address"))
		case len(e.Addresses) > maxSliceAddresses:
			errs = append(errs, field.TooMany(ap, len(e.Addresses), maxSliceAddresses))
		}
		for j, addr := range e.Addresses {
			errs = append(errs, validateSliceAddress(s.AddressType, addr, ap.Index(j))...)
		}
		if e.Hostname != nil {
			errs = append(errs, invalids(p.Child("hostname"), *e.Hostname, validation.IsDNS1123Label(*e.Hostname))...)
		}
		if e.NodeName != nil {
			errs = append(errs, invalids(p.Child("nodeName"), *e.NodeName, validation.IsDNS1123Subdomain(*e.NodeName))...)
		}
	}
	pp := field.NewPath("ports")
	if len(s.Ports) > maxSlicePorts {
		errs = append(errs, field.TooMany(pp, len(s.Ports), maxSlicePorts))
	}
	names := sets.New[string]()
	for i, port := range s.Ports {
		p := pp.Index(i)
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		if name != "" {
			errs = append(errs, invalids(p.Child("name"), name, validation.IsDNS1123Label(name))...)
		}
		if names.Has(name) {
			errs = append(errs, field.Duplicate(p.Child("name"), name))
		}
		names.Insert(name)
		if port.Port != nil {
			errs = append(errs, invalids(p.Child("port"), *port.Port, validation.IsValidPortNum(int(*port.Port)))...)
		}
		if port.Protocol == nil {
			errs = append(errs, field.Required(p.Child("protocol"), ""))
		} else {
			errs = append(errs, validateProtocol(*port.Protocol, p.Child("protocol"))...)
		}
		if port.AppProtocol != nil {
			errs = append(errs, metav1validation.ValidateLabelName(*port.AppProtocol, p.Child("appProtocol"))...)
		}
	}
	return errs
}

func validateSliceAddress(t discoveryv1.AddressType, addr string, p *field.Path) field.ErrorList {
	switch t {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
		if errs := validateEndpointIP(addr, p); len(errs) > 0 {
			return errs
		}
		if is4 := net.ParseIP(addr).To4() != nil; is4 != (t == discoveryv1.AddressTypeIPv4) {
			return field.ErrorList{field.Invalid(p, addr, fmt.Sprintf("must be an %s address", t))}
		}
	case discoveryv1.AddressTypeFQDN:
		return validation.IsFullyQualifiedDomainName(p, addr)
	}
	return nil
}
