package main

import (
	"errors"
	"fmt"
	"regexp"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

func checkServiceMonitor(doc []byte) error {
	var sm monitoringv1.ServiceMonitor
	if err := yaml.UnmarshalStrict(doc, &sm); err != nil {
		return err
	}
	if errs := validation.IsDNS1123Subdomain(sm.Name); len(errs) > 0 {
		return fmt.Errorf("metadata.name %q: %v", sm.Name, errs)
	}
	if len(sm.Spec.Endpoints) == 0 {
		return errors.New("spec.endpoints is empty")
	}
	for i, ep := range sm.Spec.Endpoints {
		if ep.Port == "" && ep.TargetPort == nil {
			return fmt.Errorf("spec.endpoints[%d]: neither port nor targetPort", i)
		}
		for name, d := range map[string]monitoringv1.Duration{"interval": ep.Interval, "scrapeTimeout": ep.ScrapeTimeout} {
			if d != "" {
				if _, err := parsePromDuration(string(d)); err != nil {
					return fmt.Errorf("spec.endpoints[%d].%s: %v", i, name, err)
				}
			}
		}
	}
	for i, ep := range sm.Spec.Endpoints {
		if ep.Interval != "" && ep.ScrapeTimeout != "" {
			iv, _ := parsePromDuration(string(ep.Interval))
			st, _ := parsePromDuration(string(ep.ScrapeTimeout))
			if st > iv {
				return fmt.Errorf("spec.endpoints[%d]: scrapeTimeout %s exceeds interval %s (Prometheus rejects it)", i, ep.ScrapeTimeout, ep.Interval)
			}
		}
	}
	if sm.Spec.Selector.MatchLabels == nil && len(sm.Spec.Selector.MatchExpressions) == 0 {
		return errors.New("spec.selector selects nothing")
	}
	return nil
}

// Prometheus label names and alert names (model.LabelNameRE; an alert name is a metric-name-like
// label value in practice and the operator's examples keep to it).
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
var metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// checkPrometheusRule checks what Prometheus' rule loader (rulefmt) refuses besides PromQL,
// which `promtool check rules` parses: groups with unique names, each rule exactly one of alert
// or record, an expression, valid durations, label and annotation names.
func checkPrometheusRule(doc []byte) error {
	var pr monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict(doc, &pr); err != nil {
		return err
	}
	if errs := validation.IsDNS1123Subdomain(pr.Name); len(errs) > 0 {
		return fmt.Errorf("metadata.name %q: %v", pr.Name, errs)
	}
	if len(pr.Spec.Groups) == 0 {
		return errors.New("spec.groups is empty")
	}
	groups := map[string]bool{}
	for gi, g := range pr.Spec.Groups {
		at := fmt.Sprintf("spec.groups[%d]", gi)
		if g.Name == "" {
			return fmt.Errorf("%s.name is empty", at)
		}
		if groups[g.Name] {
			return fmt.Errorf("%s: group name %q repeated", at, g.Name)
		}
		groups[g.Name] = true
		if g.Interval != nil {
			if _, err := parsePromDuration(string(*g.Interval)); err != nil {
				return fmt.Errorf("%s.interval: %v", at, err)
			}
		}
		if len(g.Rules) == 0 {
			return fmt.Errorf("%s.rules is empty", at)
		}
		alerts := map[string]bool{}
		for ri, r := range g.Rules {
			at := fmt.Sprintf("spec.groups[%d].rules[%d]", gi, ri)
			if (r.Alert == "") == (r.Record == "") {
				return fmt.Errorf("%s: exactly one of alert and record must be set", at)
			}
			if r.Expr.String() == "" {
				return fmt.Errorf("%s.expr is empty", at)
			}
			if r.Record != "" {
				if !metricName.MatchString(r.Record) {
					return fmt.Errorf("%s.record %q is not a metric name", at, r.Record)
				}
				if r.For != nil || len(r.Annotations) > 0 {
					return fmt.Errorf("%s: a recording rule has no for or annotations", at)
				}
			} else {
				if !metricName.MatchString(r.Alert) {
					return fmt.Errorf("%s.alert %q is not a valid alert name", at, r.Alert)
				}
				if alerts[r.Alert] {
					return fmt.Errorf("%s: alert %q repeated in the group", at, r.Alert)
				}
				alerts[r.Alert] = true
			}
			if r.For != nil {
				if _, err := parsePromDuration(string(*r.For)); err != nil {
					return fmt.Errorf("%s.for: %v", at, err)
				}
			}
			for k := range r.Labels {
				if !labelName.MatchString(k) {
					return fmt.Errorf("%s.labels: %q is not a label name", at, k)
				}
			}
			for k := range r.Annotations {
				if !labelName.MatchString(k) {
					return fmt.Errorf("%s.annotations: %q is not an annotation name", at, k)
				}
			}
			if r.Alert != "" && r.Labels["severity"] == "" {
				return fmt.Errorf("%s: alert %s has no severity label (Alertmanager routes on it)", at, r.Alert)
			}
		}
	}
	return nil
}
