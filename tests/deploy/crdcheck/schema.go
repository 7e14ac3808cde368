package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// crdSchema validates an object the way the API server does with a CustomResourceDefinition's
// schema on create: structural defaulting, then unknown fields (what pruning would drop; strict
// field validation refuses them), then the OpenAPI v3 schema, then the x-kubernetes-validations
// CEL rules.
type crdSchema struct {
	source     string
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

// loadCRDs reads a CustomResourceDefinition file and returns one schema per served version,
// keyed by "<group>/<version> <Kind>".
func loadCRDs(path string) (map[string]*crdSchema, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if crd.Kind != "CustomResourceDefinition" {
		return nil, fmt.Errorf("%s: not a CustomResourceDefinition", path)
	}
	out := map[string]*crdSchema{}
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			return nil, fmt.Errorf("%s (%s): %v", path, v.Name, err)
		}
		s, err := structuralschema.NewStructural(&internal)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): not a structural schema: %v", path, v.Name, err)
		}
		val, _, err := apiservervalidation.NewSchemaValidator(&internal)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %v", path, v.Name, err)
		}
		key := fmt.Sprintf("%s/%s %s", crd.Spec.Group, v.Name, crd.Spec.Names.Kind)
		out[key] = &crdSchema{path, s, val, cel.NewValidator(s, true, celconfig.PerCallLimit)}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no served version with a schema", path)
	}
	return out, nil
}

func (c *crdSchema) validate(doc []byte) error {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	// integers as int64, as the API server's unstructured decoding makes them
	var obj map[string]any
	if err := utiljson.Unmarshal(js, &obj); err != nil {
		return err
	}
	defaulting.Default(obj, c.structural)
	var errs field.ErrorList
	unknown := pruning.PruneWithOptions(obj, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range unknown {
		errs = append(errs, field.Invalid(field.NewPath(p), nil, "unknown field (the API server drops it, or refuses it with strict field validation)"))
	}
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, c.validator)...)
	celErrs, _ := c.cel.Validate(context.Background(), nil, c.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	errs = append(errs, celErrs...)
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("CRD schema (%s): %s", c.source, strings.Join(msgs, "; "))
}
