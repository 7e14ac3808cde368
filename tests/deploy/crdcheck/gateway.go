package main

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// checkHTTPRoute checks an HTTPRoute against what the Gateway API CRD's schema and CEL rules
// require of the fields the chart renders: parents, hostnames, path matches and Service backends.
func checkHTTPRoute(doc []byte) error {
	var r gwv1.HTTPRoute
	if err := yaml.UnmarshalStrict(doc, &r); err != nil {
		return err
	}
	if errs := validation.IsDNS1123Subdomain(r.Name); len(errs) > 0 {
		return fmt.Errorf("metadata.name %q: %v", r.Name, errs)
	}
	if len(r.Spec.ParentRefs) == 0 {
		return errors.New("spec.parentRefs is empty: the route attaches to no Gateway")
	}
	if len(r.Spec.ParentRefs) > 32 {
		return errors.New("spec.parentRefs: at most 32")
	}
	for i, p := range r.Spec.ParentRefs {
		if p.Name == "" {
			return fmt.Errorf("spec.parentRefs[%d].name is empty", i)
		}
		if p.Namespace != nil {
			if errs := validation.IsDNS1123Label(string(*p.Namespace)); len(errs) > 0 {
				return fmt.Errorf("spec.parentRefs[%d].namespace: %v", i, errs)
			}
		}
	}
	for i, h := range r.Spec.Hostnames {
		host := strings.TrimPrefix(string(h), "*.")
		if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 || strings.Contains(host, "*") {
			return fmt.Errorf("spec.hostnames[%d] %q is not a hostname (a leading *. is allowed)", i, h)
		}
	}
	if len(r.Spec.Rules) == 0 {
		return errors.New("spec.rules is empty")
	}
	for ri, rule := range r.Spec.Rules {
		for mi, m := range rule.Matches {
			if m.Path == nil || m.Path.Value == nil {
				continue
			}
			v := *m.Path.Value
			typ := gwv1.PathMatchPathPrefix
			if m.Path.Type != nil {
				typ = *m.Path.Type
			}
			at := fmt.Sprintf("spec.rules[%d].matches[%d].path", ri, mi)
			switch typ {
			case gwv1.PathMatchPathPrefix, gwv1.PathMatchExact:
				if !strings.HasPrefix(v, "/") || strings.Contains(v, "//") || strings.Contains(v, "/./") ||
					strings.Contains(v, "/../") || strings.HasSuffix(v, "/..") || strings.HasSuffix(v, "/.") {
					return fmt.Errorf("%s.value %q: must be an absolute path without // or dot segments", at, v)
				}
			case gwv1.PathMatchRegularExpression:
			default:
				return fmt.Errorf("%s.type %q: not Exact, PathPrefix or RegularExpression", at, typ)
			}
		}
		if len(rule.BackendRefs) == 0 {
			return fmt.Errorf("spec.rules[%d].backendRefs is empty", ri)
		}
		for bi, b := range rule.BackendRefs {
			kind := "Service"
			if b.Kind != nil {
				kind = string(*b.Kind)
			}
			if kind == "Service" && (b.Group == nil || *b.Group == "") && b.Port == nil {
				return fmt.Errorf("spec.rules[%d].backendRefs[%d]: a Service backend needs a port", ri, bi)
			}
		}
	}
	return nil
}
