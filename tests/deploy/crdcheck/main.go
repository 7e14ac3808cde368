// crdcheck validates rendered objects of custom resources, which the Kubernetes OpenAPI schemas
// used by kubernetes-validate do not cover, by decoding them strictly into their projects' own Go
// API types (an unknown field or a wrong type is an error) and then checking what those projects
// check on admission or at run time:
//   - ServiceMonitor and PrometheusRule (monitoring.coreos.com/v1, Prometheus Operator);
//   - ScaledObject (keda.sh/v1alpha1, KEDA), with KEDA's own trigger, replica-bound and
//     fallback checks and the Prometheus scaler's required metadata;
//   - HTTPRoute (gateway.networking.k8s.io/v1, Gateway API).
//
// With -crd FILE (repeatable: a CustomResourceDefinition, e.g. from the project's Go module),
// objects of that kind are also validated as the API server validates them against the CRD:
// defaults, unknown fields, the OpenAPI v3 schema and the CEL rules (x-kubernetes-validations).
//
// Usage (multi-document YAML such as `helm template` output; other kinds are skipped):
//
//	crdcheck [-crd CRD.yaml]... FILE...
//
// Prints one "INFO <file>: <Kind> <name> passed (...)" or "ERROR <file>: <Kind> <name>: ..." line
// per object; exits 1 when any object fails.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

type checker struct {
	apiVersion string
	check      func(doc []byte) error
}

var checkers = map[string]checker{
	"ServiceMonitor": {"monitoring.coreos.com/v1", checkServiceMonitor},
	"PrometheusRule": {"monitoring.coreos.com/v1", checkPrometheusRule},
	"ScaledObject":   {"keda.sh/v1alpha1", checkScaledObject},
	"HTTPRoute":      {"gateway.networking.k8s.io/v1", checkHTTPRoute},
}

type crdFlags []string

func (c *crdFlags) String() string     { return strings.Join(*c, ",") }
func (c *crdFlags) Set(v string) error { *c = append(*c, v); return nil }

func main() {
	var crdFiles crdFlags
	flag.Var(&crdFiles, "crd", "CustomResourceDefinition file to validate its kind against (repeatable)")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: crdcheck [-crd CRD.yaml]... FILE...")
		os.Exit(2)
	}
	schemas := map[string]*crdSchema{}
	for _, f := range crdFiles {
		loaded, err := loadCRDs(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ERROR", err)
			os.Exit(2)
		}
		for k, v := range loaded {
			schemas[k] = v
		}
	}
	failed, checked := 0, 0
	for _, name := range flag.Args() {
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
			c, ok := checkers[tm.Kind]
			if !ok {
				continue
			}
			checked++
			if tm.APIVersion != c.apiVersion {
				failed++
				fmt.Printf("ERROR %s: %s %s: apiVersion %q, want %q\n", name, tm.Kind, tm.Metadata.Name, tm.APIVersion, c.apiVersion)
				continue
			}
			how := "strict decode"
			err = c.check(doc)
			if s, ok := schemas[tm.APIVersion+" "+tm.Kind]; ok && err == nil {
				how += ", CRD schema and CEL rules"
				err = s.validate(doc)
			}
			if err != nil {
				failed++
				fmt.Printf("ERROR %s: %s %s: %v\n", name, tm.Kind, tm.Metadata.Name, err)
			} else {
				fmt.Printf("INFO %s: %s %s passed (%s, %s)\n", name, tm.Kind, tm.Metadata.Name, c.apiVersion, how)
			}
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
	if checked == 0 {
		fmt.Println("INFO no custom resource found")
	}
}
