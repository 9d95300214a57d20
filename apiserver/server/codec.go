package server

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxBodyBytes is the largest request body read; etcd's own default request
// limit is 1.5 MiB, so most bodies near this size answer 413 from etcd anyway.
const maxBodyBytes = 3 << 20

const (
	mediaJSON     = "application/json"
	mediaYAML     = "application/yaml"
	mediaProtobuf = "application/vnd.kubernetes.protobuf"
)

// codecs wraps apimachinery's codec factory with request and response
// negotiation.
type codecs struct {
	scheme  *runtime.Scheme
	factory serializer.CodecFactory
}

func newCodecs(scheme *runtime.Scheme) *codecs {
	return &codecs{scheme: scheme, factory: serializer.NewCodecFactory(scheme)}
}

func (c *codecs) info(mediaType string) (runtime.SerializerInfo, bool) {
	for _, info := range c.factory.SupportedMediaTypes() {
		if info.MediaType == mediaType {
			return info, true
		}
	}
	return runtime.SerializerInfo{}, false
}

// accepted is a negotiated response format.
type accepted struct {
	info  runtime.SerializerInfo
	table bool // as=Table;g=meta.k8s.io;v=v1
}

// negotiate picks the response serializer from the Accept header, in the
// client's order; table says whether the server may answer a Table here.
func (c *codecs) negotiate(r *http.Request, tableOK bool) (accepted, error) {
	header := r.Header.Get("Accept")
	if strings.TrimSpace(header) == "" {
		info, _ := c.info(mediaJSON)
		return accepted{info: info}, nil
	}
	for _, part := range strings.Split(header, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if as := params["as"]; as != "" {
			if as == "Table" && tableOK && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1") {
				if info, ok := c.info(mediaFor(mt)); ok && info.MediaType != mediaProtobuf {
					return accepted{info: info, table: true}, nil
				}
			}
			continue
		}
		if info, ok := c.info(mediaFor(mt)); ok {
			return accepted{info: info}, nil
		}
	}
	return accepted{}, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schema.GroupResource{}, "", fmt.Sprintf("none of the media types in %q is served; use application/json, application/yaml or application/vnd.kubernetes.protobuf", header), 0, false)
}

func mediaFor(mt string) string {
	switch mt {
	case "*/*", "application/*":
		return mediaJSON
	}
	return mt
}

// encode writes obj in the negotiated format, with apiVersion and kind set.
func (c *codecs) encode(w io.Writer, info runtime.SerializerInfo, obj runtime.Object) error {
	if err := c.setKind(obj); err != nil {
		return err
	}
	return info.Serializer.Encode(obj, w)
}

func (c *codecs) setKind(obj runtime.Object) error {
	if !obj.GetObjectKind().GroupVersionKind().Empty() {
		return nil
	}
	gvks, _, err := c.scheme.ObjectKinds(obj)
	if err != nil {
		return err
	}
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	return nil
}

// fieldValidation is the ?fieldValidation= mode for unknown fields.
type fieldValidation string

const (
	validationStrict fieldValidation = "Strict"
	validationWarn   fieldValidation = "Warn"
	validationIgnore fieldValidation = "Ignore"
)

func parseFieldValidation(r *http.Request) (fieldValidation, error) {
	switch v := r.URL.Query().Get("fieldValidation"); v {
	case "", "Strict":
		return validationStrict, nil
	case "Warn":
		return validationWarn, nil
	case "Ignore":
		return validationIgnore, nil
	default:
		return "", apierrors.NewBadRequest(fmt.Sprintf("fieldValidation %q is not Strict, Warn or Ignore", v))
	}
}

// readBody reads at most maxBodyBytes of the request body.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > maxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d bytes", maxBodyBytes))
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest("reading request body: " + err.Error())
	}
	if len(data) > maxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d bytes", maxBodyBytes))
	}
	return data, nil
}

// decode reads a request body of the given content type into into, checking
// the kind and unknown fields as mode says. It returns warnings.
func (c *codecs) decode(contentType string, data []byte, gvk schema.GroupVersionKind, into runtime.Object, mode fieldValidation) ([]string, error) {
	mt := mediaJSON
	if contentType != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(contentType); err != nil {
			return nil, unsupportedMediaType(contentType)
		}
	}
	switch mt {
	case "application/merge-patch+json", "application/strategic-merge-patch+json", "application/json-patch+json":
		mt = mediaJSON
	case "text/plain", "application/x-www-form-urlencoded":
		// curl -d sends this; treat it as JSON or YAML by its first byte.
		mt = mediaYAML
	}
	info, ok := c.info(mt)
	if !ok {
		return nil, unsupportedMediaType(contentType)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, apierrors.NewBadRequest("the request body is empty")
	}
	dec := info.Serializer
	if mode != validationIgnore && info.StrictSerializer != nil {
		dec = info.StrictSerializer
	}
	out, _, err := dec.Decode(data, &gvk, into)
	var warnings []string
	if err != nil && runtime.IsStrictDecodingError(err) && out != nil {
		strict, _ := runtime.AsStrictDecodingError(err)
		if mode == validationStrict {
			return nil, strictError(gvk, strict)
		}
		for _, e := range strict.Errors() {
			warnings = append(warnings, e.Error())
		}
		err = nil
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body of the request could not be decoded as %s: %v", gvk.Kind, err))
	}
	if out != into {
		got := out.GetObjectKind().GroupVersionKind()
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body is a %s %s, but this endpoint takes a %s %s", got.GroupVersion(), got.Kind, gvk.GroupVersion(), gvk.Kind))
	}
	// As in Kubernetes, a body that leaves out apiVersion or kind takes
	// them from the endpoint.
	got := into.GetObjectKind().GroupVersionKind()
	if got.Kind == "" {
		got.Kind = gvk.Kind
	}
	if got.Version == "" {
		got.Group, got.Version = gvk.Group, gvk.Version
	}
	into.GetObjectKind().SetGroupVersionKind(got)
	if got != gvk {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body is a %s %s, but this endpoint takes a %s %s", got.GroupVersion(), got.Kind, gvk.GroupVersion(), gvk.Kind))
	}
	return warnings, nil
}

// strictError turns unknown or duplicate fields into a BadRequest naming
// each field, as Kubernetes' fieldValidation=Strict does.
func strictError(gvk schema.GroupVersionKind, e interface{ Errors() []error }) error {
	var causes []metav1.StatusCause
	var msgs []string
	for _, err := range e.Errors() {
		msg := err.Error()
		msgs = append(msgs, msg)
		f := msg
		if i := strings.Index(msg, `"`); i >= 0 {
			if j := strings.Index(msg[i+1:], `"`); j >= 0 {
				f = msg[i+1 : i+1+j]
			}
		}
		causes = append(causes, metav1.StatusCause{Type: metav1.CauseTypeFieldValueNotSupported, Field: f, Message: msg})
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusBadRequest,
		Reason:  metav1.StatusReasonBadRequest,
		Message: fmt.Sprintf("%s in version %q cannot be handled as a %s: strict decoding error: %s", gvk.Kind, gvk.GroupVersion(), gvk.Kind, strings.Join(msgs, ", ")),
		Details: &metav1.StatusDetails{Kind: gvk.Kind, Causes: causes},
	}}
}

func unsupportedMediaType(contentType string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusUnsupportedMediaType,
		Reason:  metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the body of the request was in an unknown format %q; use application/json, application/yaml or application/vnd.kubernetes.protobuf", contentType),
	}}
}

// invalid is the 422 for field errors.
func invalid(gk schema.GroupKind, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(gk, name, errs)
}
