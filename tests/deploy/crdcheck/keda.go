package main

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// checkScaledObject runs KEDA's own checks of its admission webhook that need no cluster
// (triggers, replica bounds, fallback) and the Prometheus scaler's required metadata.
func checkScaledObject(doc []byte) error {
	var so kedav1alpha1.ScaledObject
	if err := yaml.UnmarshalStrict(doc, &so); err != nil {
		return err
	}
	if errs := validation.IsDNS1123Subdomain(so.Name); len(errs) > 0 {
		return fmt.Errorf("metadata.name %q: %v", so.Name, errs)
	}
	ref := so.Spec.ScaleTargetRef
	if ref == nil || ref.Name == "" {
		return errors.New("spec.scaleTargetRef.name is empty")
	}
	if ref.Kind != "" && ref.Kind != "Deployment" {
		return fmt.Errorf("spec.scaleTargetRef.kind %q: the chart scales its Deployment", ref.Kind)
	}
	if err := kedav1alpha1.ValidateTriggers(so.Spec.Triggers); err != nil {
		return err
	}
	if err := kedav1alpha1.CheckReplicaCountBoundsAreValid(&so); err != nil {
		return err
	}
	if err := kedav1alpha1.CheckFallbackValid(&so); err != nil {
		return err
	}
	for i, t := range so.Spec.Triggers {
		at := fmt.Sprintf("spec.triggers[%d]", i)
		if t.Type != "prometheus" {
			continue
		}
		addr := t.Metadata["serverAddress"]
		u, err := url.Parse(addr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s.metadata.serverAddress %q is not an http(s) URL", at, addr)
		}
		if t.Metadata["query"] == "" {
			return fmt.Errorf("%s.metadata.query is empty", at)
		}
		for _, key := range []string{"threshold", "activationThreshold"} {
			v, ok := t.Metadata[key]
			if !ok && key == "activationThreshold" {
				continue
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("%s.metadata.%s %q is not a number", at, key, v)
			}
			if key == "threshold" && f <= 0 {
				return fmt.Errorf("%s.metadata.threshold %q must be above 0", at, v)
			}
		}
		if t.AuthenticationRef != nil && t.AuthenticationRef.Name == "" {
			return fmt.Errorf("%s.authenticationRef.name is empty", at)
		}
	}
	return nil
}
