// crdcheck validates rendered Prometheus Operator objects (ServiceMonitor), which the
// Kubernetes OpenAPI schemas used by kubernetes-validate do not cover, by decoding them strictly
// into the operator's own Go API types: an unknown field or a wrong type is an error.
//
//	go run . FILE...   (multi-document YAML, e.g. `helm template` output; other kinds are skipped)
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

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

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: crdcheck FILE...")
		os.Exit(2)
	}
	failed, checked := 0, 0
	for _, name := range os.Args[1:] {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ERROR", err)
			os.Exit(2)
		}
		r := utilyaml.NewYAMLReader(bufioReader(data))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "ERROR %s: %v\n", name, err)
				os.Exit(2)
			}
			var tm typeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil || tm.Kind == "" {
				continue
			}
			if tm.APIVersion != "monitoring.coreos.com/v1" || tm.Kind != "ServiceMonitor" {
				continue
			}
			checked++
			if err := checkServiceMonitor(doc); err != nil {
				failed++
				fmt.Printf("ERROR %s: ServiceMonitor: %v\n", name, err)
			} else {
				fmt.Printf("INFO %s: ServiceMonitor passed (monitoring.coreos.com/v1, strict decode)\n", name)
			}
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
	if checked == 0 {
		fmt.Println("INFO no ServiceMonitor found")
	}
}
