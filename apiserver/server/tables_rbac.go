package server

import (
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// rbacPrinters are the Table columns of the RBAC kinds, as kubectl shows
// them.
var rbacPrinters = map[string]printer{
	"Role":               roleTable,
	"ClusterRole":        roleTable,
	"RoleBinding":        bindingTable,
	"ClusterRoleBinding": bindingTable,
}

var roleTable = printer{
	columns: []metav1.TableColumnDefinition{nameCol,
		col("Created At", "date", "CreationTimestamp is the time the object was created.", 0)},
	cells: func(obj runtime.Object, now time.Time) []any {
		m := accessor(obj)
		return []any{m.GetName(), m.GetCreationTimestamp().UTC().Format(time.RFC3339)}
	},
}

var bindingTable = printer{
	columns: []metav1.TableColumnDefinition{nameCol,
		col("Role", "string", "The role the binding grants.", 0), ageCol,
		col("Users", "string", "The users the binding grants the role to.", 1),
		col("Groups", "string", "The groups the binding grants the role to.", 1),
		col("ServiceAccounts", "string", "The service accounts the binding grants the role to.", 1)},
	cells: func(obj runtime.Object, now time.Time) []any {
		var ref rbacv1.RoleRef
		var subjects []rbacv1.Subject
		switch b := obj.(type) {
		case *rbacv1.RoleBinding:
			ref, subjects = b.RoleRef, b.Subjects
		case *rbacv1.ClusterRoleBinding:
			ref, subjects = b.RoleRef, b.Subjects
		}
		var users, groups, sas []string
		for _, s := range subjects {
			switch s.Kind {
			case rbacv1.UserKind:
				users = append(users, s.Name)
			case rbacv1.GroupKind:
				groups = append(groups, s.Name)
			case rbacv1.ServiceAccountKind:
				sas = append(sas, s.Namespace+"/"+s.Name)
			}
		}
		m := accessor(obj)
		return []any{m.GetName(), ref.Kind + "/" + ref.Name, age(m.GetCreationTimestamp(), now),
			strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", ")}
	},
}
