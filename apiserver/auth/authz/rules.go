package authz

import (
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// RuleAllows reports whether rule grants the request described by a. It is
// Kubernetes' RBAC rule matching: verbs, apiGroups and resources match
// exactly or by "*"; a resource "pods/status" names a subresource and
// "*/status" that subresource of every resource; resourceNames, when set,
// must name the object (so they never match a create or a list); a
// non-resource URL matches exactly, by "*", or by a prefix ending in "*".
func RuleAllows(a Attributes, rule *rbacv1.PolicyRule) bool {
	if !verbMatches(rule, a.Verb) {
		return false
	}
	if !a.ResourceRequest {
		return nonResourceURLMatches(rule, a.Path)
	}
	return apiGroupMatches(rule, a.APIGroup) &&
		resourceMatches(rule, a.Resource, a.Subresource) &&
		resourceNameMatches(rule, a.Name)
}

func verbMatches(rule *rbacv1.PolicyRule, verb string) bool {
	return slices.Contains(rule.Verbs, rbacv1.VerbAll) || slices.Contains(rule.Verbs, verb)
}

func apiGroupMatches(rule *rbacv1.PolicyRule, group string) bool {
	return slices.Contains(rule.APIGroups, rbacv1.APIGroupAll) || slices.Contains(rule.APIGroups, group)
}

func resourceMatches(rule *rbacv1.PolicyRule, resource, sub string) bool {
	combined := resource
	if sub != "" {
		combined = resource + "/" + sub
	}
	for _, r := range rule.Resources {
		switch {
		case r == rbacv1.ResourceAll, r == combined:
			return true
		case sub != "" && r == "*/"+sub:
			return true
		}
	}
	return false
}

func resourceNameMatches(rule *rbacv1.PolicyRule, name string) bool {
	return len(rule.ResourceNames) == 0 || slices.Contains(rule.ResourceNames, name)
}

func nonResourceURLMatches(rule *rbacv1.PolicyRule, path string) bool {
	for _, u := range rule.NonResourceURLs {
		switch {
		case u == rbacv1.NonResourceAll, u == path:
			return true
		case strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimSuffix(u, "*")):
			return true
		}
	}
	return false
}

// Covers reports whether owner's rules grant everything requested's rules
// do, as Kubernetes' escalation check does: each requested rule is broken
// into single verb/group/resource/name (or verb/URL) grants, each of which
// some owner rule must grant. A "*" asked for needs a "*" held. It returns
// the first grants not covered, for the error message.
func Covers(owner, requested []rbacv1.PolicyRule) (bool, []rbacv1.PolicyRule) {
	var missing []rbacv1.PolicyRule
	for _, r := range requested {
		for _, atom := range breakdown(r) {
			if !slices.ContainsFunc(owner, func(o rbacv1.PolicyRule) bool { return ruleCovers(&o, &atom) }) {
				missing = append(missing, atom)
			}
		}
	}
	return len(missing) == 0, missing
}

// breakdown splits a rule into rules of one verb, group, resource and name
// (or one verb and URL).
func breakdown(r rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, verb := range r.Verbs {
		for _, u := range r.NonResourceURLs {
			out = append(out, rbacv1.PolicyRule{Verbs: []string{verb}, NonResourceURLs: []string{u}})
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				if len(r.ResourceNames) == 0 {
					out = append(out, rbacv1.PolicyRule{Verbs: []string{verb}, APIGroups: []string{g}, Resources: []string{res}})
					continue
				}
				for _, n := range r.ResourceNames {
					out = append(out, rbacv1.PolicyRule{Verbs: []string{verb}, APIGroups: []string{g}, Resources: []string{res}, ResourceNames: []string{n}})
				}
			}
		}
	}
	return out
}

// ruleCovers reports whether owner grants the single grant atom.
func ruleCovers(owner, atom *rbacv1.PolicyRule) bool {
	if !verbMatches(owner, atom.Verbs[0]) {
		return false
	}
	if len(atom.NonResourceURLs) > 0 {
		want := atom.NonResourceURLs[0]
		for _, u := range owner.NonResourceURLs {
			if u == rbacv1.NonResourceAll || u == want ||
				(strings.HasSuffix(u, "*") && strings.HasPrefix(want, strings.TrimSuffix(u, "*"))) {
				return true
			}
		}
		return false
	}
	if !apiGroupMatches(owner, atom.APIGroups[0]) {
		return false
	}
	want := atom.Resources[0]
	resOK := false
	for _, r := range owner.Resources {
		if r == rbacv1.ResourceAll || r == want ||
			(strings.HasPrefix(r, "*/") && strings.HasSuffix(want, r[1:])) {
			resOK = true
			break
		}
	}
	if !resOK {
		return false
	}
	if len(owner.ResourceNames) == 0 {
		return true
	}
	return len(atom.ResourceNames) == 1 && slices.Contains(owner.ResourceNames, atom.ResourceNames[0])
}

// describeRule is a compact rendering of a rule for messages.
func describeRule(r rbacv1.PolicyRule) string {
	if len(r.NonResourceURLs) > 0 {
		return fmt.Sprintf("{NonResourceURLs:%v Verbs:%v}", r.NonResourceURLs, r.Verbs)
	}
	s := fmt.Sprintf("{APIGroups:%q Resources:%v", r.APIGroups, r.Resources)
	if len(r.ResourceNames) > 0 {
		s += fmt.Sprintf(" ResourceNames:%v", r.ResourceNames)
	}
	return s + fmt.Sprintf(" Verbs:%v}", r.Verbs)
}
