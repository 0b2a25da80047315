# ---- The Kubernetes deployment on top: k8s/overlays/prod, pointed at MSK and ElastiCache ---------------
# Terraform builds the same kustomization `kubectl apply -k k8s/overlays/prod` would, plus what exists
# only once the cloud resources do: the managed endpoints and credentials (a Secret every service reads
# after forewarn-config, so its values win), no in-cluster Kafka or Redis, and the released image digests.
# Day-to-day releases go through .github/workflows/release.yml instead (docs/DEPLOYMENT.md).

resource "kubernetes_secret_v1" "managed" {
  count = var.deploy_kubernetes ? 1 : 0
  metadata {
    name      = "forewarn-managed"
    namespace = "forewarn"
  }
  data = {
    FOREWARN_KAFKA__BOOTSTRAP_SERVERS  = aws_msk_cluster.main.bootstrap_brokers_sasl_scram
    FOREWARN_KAFKA__SECURITY_PROTOCOL  = "SASL_SSL"
    FOREWARN_KAFKA__SASL_MECHANISM     = "SCRAM-SHA-512"
    FOREWARN_KAFKA__SASL_USERNAME      = "forewarn"
    FOREWARN_KAFKA__SASL_PASSWORD      = random_password.kafka.result
    FOREWARN_KAFKA__REPLICATION_FACTOR = "3"
    FOREWARN_REDIS__URL                = "rediss://:${random_password.redis.result}@${aws_elasticache_replication_group.main.primary_endpoint_address}:6379/0"
  }

  depends_on = [kustomization_resource.p0]
}

data "kustomization_overlay" "prod" {
  resources = ["${path.module}/../../k8s/overlays/prod"]

  # The images the release workflow built, pinned by digest (what runs is what was scanned).
  dynamic "images" {
    for_each = var.image_digests
    content {
      name     = "registry.example.com/forewarn/${images.key}"
      new_name = "${var.image_registry}/forewarn-${images.key}"
      digest   = images.value
    }
  }

  patches {
    target {
      kind = "Deployment"
      name = "ingest|features|scorer|alerter|monitor"
    }
    patch = <<-YAML
      - op: add
        path: /spec/template/spec/containers/0/envFrom/-
        value:
          secretRef:
            name: forewarn-managed
    YAML
  }

  # MSK and ElastiCache replace the in-cluster single-node Kafka and Redis of the infra component.
  patches {
    patch = <<-YAML
      apiVersion: apps/v1
      kind: StatefulSet
      metadata:
        name: kafka
      $patch: delete
    YAML
  }
  patches {
    patch = <<-YAML
      apiVersion: apps/v1
      kind: StatefulSet
      metadata:
        name: redis
      $patch: delete
    YAML
  }
}

# In kbst's documented order: namespaces (and CRDs) first, then the Secret above, then everything else
# (which reads it), then webhooks.
resource "kustomization_resource" "p0" {
  for_each = var.deploy_kubernetes ? data.kustomization_overlay.prod.ids_prio[0] : toset([])
  manifest = data.kustomization_overlay.prod.manifests[each.value]

  depends_on = [aws_eks_node_group.main]
}

resource "kustomization_resource" "p1" {
  for_each = var.deploy_kubernetes ? data.kustomization_overlay.prod.ids_prio[1] : toset([])
  manifest = data.kustomization_overlay.prod.manifests[each.value]

  depends_on = [kubernetes_secret_v1.managed]
}

resource "kustomization_resource" "p2" {
  for_each = var.deploy_kubernetes ? data.kustomization_overlay.prod.ids_prio[2] : toset([])
  manifest = data.kustomization_overlay.prod.manifests[each.value]

  depends_on = [kustomization_resource.p1]
}
