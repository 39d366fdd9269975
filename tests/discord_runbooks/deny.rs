//! The Deny button: an approver ends the run `denied` and nothing runs; a cancelled run's
//! buttons stay refused.

use super::*;

discord_test!(
    the_deny_button_from_an_approver_ends_the_run_denied_and_nothing_runs,
    |app| async {
        let (channel, first) = app.declare_and_request().await;
        // The first run is cancelled by its requester; the second is the one denied.
        let v = app
            .slash(DEV, &channel, "runbook", "cancel", &[("run", json!(first))])
            .await;
        assert!(!is_ephemeral(&v), "{v}");
        assert_eq!(app.run(first).await["state"], "cancelled");
        let v = app
            .slash(DEV, &channel, "runbook", "run", &[("name", json!("mark"))])
            .await;
        assert_eq!(v["type"], 4, "{v}");
        let id = app.newest_run().await;
        assert_ne!(id, first);
        let request = app.approval_request(&channel, id).await;
        let message = request["id"].as_str().unwrap().to_string();
        let deny = format!("run:{id}:g0:deny");
        assert_eq!(
            custom_ids(&request),
            [format!("run:{id}:g0:approve"), deny.clone()]
        );
        // The first run's buttons are still on its own message; they are not this run's.
        let old = app.approval_request(&channel, first).await;
        let v = app
            .press(
                SECURITY,
                &channel,
                old["id"].as_str().unwrap(),
                &format!("run:{first}:g0:approve"),
            )
            .await;
        assert_refused(&v, "it is cancelled");
        assert_still_pending(&app, id).await;

        // The requester may not deny it either (that is a cancel), nor a stranger.
        let v = app.press(DEV, &channel, &message, &deny).await;
        assert_refused(&v, "someone else must deny");
        let v = app.press(STRANGER, &channel, &message, &deny).await;
        assert_refused(&v, "needs role approver");
        assert_still_pending(&app, id).await;

        let v = app.press(SECURITY, &channel, &message, &deny).await;
        assert_eq!(v["type"], 7, "the request shows the denial: {v}");
        assert_eq!(v["data"]["components"], json!([]), "{v}");
        assert!(
            content(&v).contains(&format!("Run #{id} of mark denied by")),
            "{v}"
        );
        let run = app.run(id).await;
        assert_eq!(run["state"], "denied", "{run:#}");
        assert_eq!(run["approvals"][0]["person"], "security");
        assert_eq!(run["approvals"][0]["decision"], "deny");
        assert_eq!(run["steps"], json!([]));
        assert!(
            run["outcome"]
                .as_str()
                .unwrap()
                .contains("denied by security"),
            "{run:#}"
        );
        let timeline = app.run_timeline().await;
        let denial = timeline
            .iter()
            .find(|e| e["kind"] == "run_approval")
            .unwrap_or_else(|| panic!("no denial on the timeline: {timeline:#?}"));
        assert_eq!(denial["actor"], "security", "{denial}");

        // Denied is final: an approval now is refused, and nothing ever ran.
        let v = app
            .press(DBA, &channel, &message, &format!("run:{id}:g0:approve"))
            .await;
        assert_refused(&v, "it is denied");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.marks(), 0);
        assert_eq!(app.run(id).await["state"], "denied");
    }
);
