import Foundation
import Host
import Hummingbird

/// Subscriptions over HTTP:
/// - `GET /billing/workspaces/{w}/subscriptions`: every subscription with its status now;
/// - `POST /billing/workspaces/{w}/subscriptions` `{"item":"addon","addon":"macos-m4","term":"monthly"}`
///   or `{"item":"slots","arch":"x64","count":10}` (optional `sales_approved`, `by`): 201 with the
///   subscription, 422 with the refusal's reason (`payment_method_required`, `already_active`, …);
/// - `POST /billing/workspaces/{w}/subscriptions/{id}/cancel`: the subscription as it now is.
struct SubscriptionRoutes {
    let subscriptions: SubscriptionStore
    let workspaces: WorkspaceDirectory

    /// A subscription order as JSON.
    struct Order: Decodable {
        let item: String
        let addon: String?
        let arch: String?
        let count: Int64?
        let term: String?
        let salesApproved: Bool?
        let by: String?
        enum CodingKeys: String, CodingKey { case item, addon, arch, count, term, salesApproved = "sales_approved", by }
    }

    func add(to routes: HostRoutes) {
        let subscriptions = self.subscriptions
        let workspaces = self.workspaces
        let group = routes.group("/billing/workspaces/:workspace/subscriptions")
        group.get("", .area(.subscriptions, workspace: .path("workspace"))) { _, context -> Response in
            let workspace = try await BillingRoutes.workspace(context, workspaces)
            let list = try await subscriptions.list(workspace: workspace, now: SubscriptionStore.nowSeconds())
            return JSONResponse.raw(.ok, try JSONCoding.text(list, pretty: false))
        }
        group.post("", .area(.subscriptions, workspace: .path("workspace"))) { request, context -> Response in
            let workspace = try await BillingRoutes.workspace(context, workspaces)
            var request = request
            let body = try await request.collectBody(atMost: BillingLimits.subscriptionOrderMaxBodyBytes)
            let order: Order
            do { order = try JSONDecoder().decode(Order.self, from: Data(body.readableBytesView)) } catch {
                throw HostError(
                    .badRequest, #"the body must be {"item":"addon","addon":ID,"term":"monthly"|"prepaid_12"} or {"item":"slots","arch":A,"count":N}"#
                )
            }
            let subscription = try await subscriptions.add(
                workspace: workspace,
                SubscriptionOrder(
                    item: order.item, addon: order.addon, arch: order.arch, count: order.count ?? 1, term: order.term ?? "monthly",
                    salesApproved: order.salesApproved ?? false),
                by: String((order.by ?? "http").prefix(BillingLimits.subscriptionFieldMaxCharacters)), now: SubscriptionStore.nowSeconds())
            return JSONResponse.raw(.created, try JSONCoding.text(subscription, pretty: false))
        }
        group.post(":subscription/cancel", .area(.subscriptions, workspace: .path("workspace"))) { _, context -> Response in
            let workspace = try await BillingRoutes.workspace(context, workspaces)
            let id = context.parameters.get("subscription") ?? ""
            let cancelled = try await subscriptions.cancel(workspace: workspace, .id(id), now: SubscriptionStore.nowSeconds())
            guard let subscription = cancelled.first else { throw HostError(.notFound, "no subscription '\(id)' in workspace \(workspace)") }
            return JSONResponse.raw(.ok, try JSONCoding.text(subscription, pretty: false))
        }
    }
}

extension BillingLimits {
    /// Largest subscription order body taken (an order is a few fields).
    static let subscriptionOrderMaxBodyBytes = 4 << 10
}
