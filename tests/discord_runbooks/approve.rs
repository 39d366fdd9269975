//! The Approve button: refused to the requester and to a stranger, accepted from an approver
//! (the step runs once), refused when pressed again.

use super::*;

discord_test!(
    the_approve_button_is_refused_to_the_requester_and_a_stranger_and_runs_once_for_an_approver,
    |app| async {
        let (channel, id) = app.declare_and_request().await;

        // 1. The request, in the incident channel: Approve and Deny for this run and gate, and
        //    words saying which run, who asked and what will run.
        let request = app.approval_request(&channel, id).await;
        let approve = format!("run:{id}:g0:approve");
        let deny = format!("run:{id}:g0:deny");
        assert_eq!(custom_ids(&request), [approve.clone(), deny.clone()]);
        let buttons = &request["components"][0]["components"];
        assert_eq!(buttons[0]["label"], "Approve");
        assert_eq!(buttons[1]["label"], "Deny");
        let text = request["content"].as_str().unwrap();
        assert!(text.contains(&format!("run #{id} of mark")), "{text}");
        assert!(text.contains("requested by Development Team"), "{text}");
        // The step, numbered once, as the run numbers it.
        let steps: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("write-marker"))
            .collect();
        assert_eq!(steps.len(), 1, "{text}");
        assert!(steps[0].starts_with("1. write-marker: exec"), "{text}");
        assert!(
            text.contains("scripts/mark.sh"),
            "the step's command: {text}"
        );
        assert!(text.contains("approver"), "the role it needs: {text}");
        let message = request["id"].as_str().unwrap().to_string();
        // Posted once, and to the incident channel only.
        let posted = app
            .fake
            .requests()
            .iter()
            .filter(|r| r.ok() && custom_ids(&r.body).contains(&approve))
            .map(|r| r.path.clone())
            .collect::<Vec<_>>();
        assert_eq!(
            posted,
            [format!("/api/v10/channels/{channel}/messages")],
            "{posted:?}"
        );

        // 2. The requester's own press.
        let v = app.press(DEV, &channel, &message, &approve).await;
        assert_refused(&v, "someone else must approve");
        assert_still_pending(&app, id).await;

        // 3. Somebody Spotter does not know: a viewer, told the role it takes.
        let v = app.press(STRANGER, &channel, &message, &approve).await;
        assert_refused(&v, "needs role approver");
        assert!(content(&v).contains(&format!("discord:{STRANGER}")), "{v}");
        assert_still_pending(&app, id).await;

        // 4. An approver: accepted, and the run goes through.
        let v = app.press(DBA, &channel, &message, &approve).await;
        // The request itself shows the decision (type 7) and loses its buttons: nobody can
        // press a button that no longer does anything.
        assert_eq!(v["type"], 7, "{v}");
        assert!(
            content(&v).contains(&format!("Run #{id} of mark approved by")),
            "{v}"
        );
        assert!(
            content(&v).contains("Approval needed"),
            "the request's text is kept: {v}"
        );
        assert_eq!(v["data"]["components"], json!([]), "{v}");
        let run = app
            .wait_run(id, &["succeeded", "failed", "timed_out"])
            .await;
        assert_eq!(run["state"], "succeeded", "{run:#}");
        assert_eq!(app.marks(), 1);
        let approvals = run["approvals"].as_array().unwrap();
        assert_eq!(approvals.len(), 1, "{run:#}");
        assert_eq!(approvals[0]["person"], "dba");
        assert_eq!(approvals[0]["decision"], "approve");
        assert_eq!(approvals[0]["gate"], 0);
        // The timeline: the approval by dba (the person, never the Discord account's name).
        let timeline = app.run_timeline().await;
        let approval = timeline
            .iter()
            .find(|e| e["kind"] == "run_approval")
            .unwrap_or_else(|| panic!("no approval on the timeline: {timeline:#?}"));
        assert_eq!(approval["actor"], "dba", "{approval}");
        assert!(
            approval["text"]
                .as_str()
                .unwrap()
                .contains(&format!("Run #{id} of mark approved")),
            "{approval}"
        );
        let all = serde_json::to_string(&timeline).unwrap();
        assert!(!all.contains("user002"), "a Discord username: {all}");
        assert!(
            !all.contains(DBA),
            "a snowflake instead of the person: {all}"
        );

        // 5. The same button again: the approval was used; nothing runs twice.
        let v = app.press(DBA, &channel, &message, &approve).await;
        assert_refused(&v, "not waiting for approval");
        // And a Deny after the fact changes nothing either.
        let v = app.press(SECURITY, &channel, &message, &deny).await;
        assert_refused(&v, "not waiting for approval");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.marks(), 1, "the step ran once");
        let after = app.run(id).await;
        assert_eq!(after["state"], "succeeded");
        assert_eq!(after["approvals"], run["approvals"]);
        // Only the one approval request was posted for the run.
        let asks = app
            .fake
            .requests()
            .iter()
            .filter(|r| r.ok() && custom_ids(&r.body).contains(&approve))
            .count();
        assert_eq!(asks, 1);
        // The audit log: one request by dev, one approval by dba; the refused presses none.
        let audit: Vec<(String, String)> = app
            .engine
            .store()
            .audit_log()
            .await
            .unwrap()
            .entries
            .into_iter()
            .filter(|e| e.subject == format!("run:{id}") && e.action != "run.finish")
            .map(|e| (e.action, e.actor))
            .filter(|(a, _)| a == "run.request" || a == "run.approve" || a == "run.deny")
            .collect();
        assert_eq!(
            audit,
            [
                ("run.request".to_string(), "dev".to_string()),
                ("run.approve".to_string(), "dba".to_string())
            ]
        );
    }
);

discord_test!(
    two_approvers_pressing_at_once_give_one_approval_and_one_run,
    |app| async {
        let (channel, id) = app.declare_and_request().await;
        let request = app.approval_request(&channel, id).await;
        let message = request["id"].as_str().unwrap();
        let approve = format!("run:{id}:g0:approve");
        let (a, b) = tokio::join!(
            app.press(DBA, &channel, message, &approve),
            app.press(SECURITY, &channel, message, &approve),
        );
        let accepted: Vec<&Value> = [&a, &b]
            .into_iter()
            .filter(|v| content(v).contains("approved by"))
            .collect();
        assert_eq!(accepted.len(), 1, "exactly one counts: {a} {b}");
        let refused = if accepted[0] == &a { &b } else { &a };
        assert_refused(refused, "not waiting for approval");
        let run = app
            .wait_run(id, &["succeeded", "failed", "timed_out"])
            .await;
        assert_eq!(run["state"], "succeeded", "{run:#}");
        assert_eq!(run["approvals"].as_array().unwrap().len(), 1, "{run:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.marks(), 1, "the step ran once");
    }
);

discord_test!(
    an_approve_pressed_after_the_window_closed_is_refused_and_nothing_runs,
    |c| c.runbooks.approval_ttl = chrono::Duration::seconds(1),
    |app| async {
        let (channel, id) = app.declare_and_request().await;
        let request = app.approval_request(&channel, id).await;
        let message = request["id"].as_str().unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let v = app
            .press(DBA, &channel, message, &format!("run:{id}:g0:approve"))
            .await;
        // Whether the expiry job or the press noticed first, the window is said to be closed.
        assert_refused(&v, "approval window");
        assert!(content(&v).contains("nothing ran"), "{v}");
        let run = app.wait_run(id, &["expired"]).await;
        assert_eq!(run["approvals"], json!([]), "{run:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.marks(), 0);
    }
);

discord_test!(
    a_slow_approval_is_acknowledged_at_once_then_shown_on_the_request,
    |app| async {
        let (channel, id) = app.declare_and_request().await;
        let request = app.approval_request(&channel, id).await;
        let message = request["id"].as_str().unwrap();
        // The decision cannot be written within Discord's 3 seconds.
        let hold = hold_run_writes(&app.database_url, Duration::from_millis(3500)).await;
        let token = ix::token("slow-approve");
        let click = ix::button_on(
            DBA,
            &[],
            &channel,
            message,
            request["content"].as_str().unwrap_or(""),
            &format!("run:{id}:g0:approve"),
            &token,
        );
        let started = Instant::now();
        let v = app.interact(&click).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(v["type"], 6, "acknowledged, the message left as it is: {v}");
        hold.await.unwrap();
        // The decision is written onto the request message through the interaction webhook.
        let path = format!("/api/v10/webhooks/{APPLICATION_ID}/{token}/messages/@original");
        let edit = app
            .fake
            .wait_for("the deferred answer", Duration::from_secs(15), |reqs| {
                reqs.iter()
                    .find(|r| r.ok() && r.is("PATCH", &path))
                    .cloned()
            })
            .await;
        let text = edit.body["content"].as_str().unwrap_or("");
        assert!(
            text.contains(&format!("Run #{id} of mark approved by"))
                && text.contains("Approval needed"),
            "{}",
            edit.body
        );
        assert_eq!(edit.body["components"], json!([]), "{}", edit.body);
        let run = app
            .wait_run(id, &["succeeded", "failed", "timed_out"])
            .await;
        assert_eq!(run["state"], "succeeded", "{run:#}");
        assert_eq!(app.marks(), 1);
    }
);
