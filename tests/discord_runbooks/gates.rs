//! Gates: a step with its own approval gets a new request whose buttons name its gate; the
//! earlier request's buttons are refused; the Discord role map grants approver.

use super::*;

discord_test!(
    a_step_with_its_own_approval_gets_new_buttons_and_the_earlier_ones_are_refused,
    |app| async {
        // security, an approver, requests: holding the role does not let them approve it.
        let (channel, id) = app
            .declare_and_request_as(SECURITY, "security", "two-step")
            .await;
        let first = app.approval_request(&channel, id).await;
        let text = first["content"].as_str().unwrap();
        let steps: Vec<&str> = text.lines().filter(|l| l.contains(": exec")).collect();
        assert_eq!(steps.len(), 2, "{text}");
        assert!(steps[0].starts_with("1. first: exec"), "{text}");
        assert!(steps[1].starts_with("2. second: exec"), "{text}");
        // A dry run from Discord lists the same plan, numbered the same way, and runs nothing.
        let v = app
            .slash(
                DBA,
                &channel,
                "runbook",
                "run",
                &[("name", json!("two-step")), ("dry_run", json!(true))],
            )
            .await;
        let dry: Vec<&str> = content(&v)
            .lines()
            .filter(|l| l.contains(": exec"))
            .collect();
        assert_eq!(dry, steps, "{v}");
        let first_id = first["id"].as_str().unwrap().to_string();
        let approve0 = format!("run:{id}:g0:approve");
        let v = app.press(SECURITY, &channel, &first_id, &approve0).await;
        assert_refused(&v, "someone else must approve");
        assert_still_pending(&app, id).await;

        // dba approves the run; the first step runs and the run waits at the second.
        let v = app.press(DBA, &channel, &first_id, &approve0).await;
        assert!(content(&v).contains("approved by"), "{v}");
        let second = app.approval_request_at(&channel, id, 1).await;
        assert_eq!(
            custom_ids(&second),
            [format!("run:{id}:g1:approve"), format!("run:{id}:g1:deny")]
        );
        let text = second["content"].as_str().unwrap();
        assert!(text.contains("is at step 2 (second)"), "{text}");
        // Only what is left, by its own number: step 2, not step 1 again.
        let steps: Vec<&str> = text.lines().filter(|l| l.contains(": exec")).collect();
        assert_eq!(steps.len(), 1, "{text}");
        assert!(steps[0].starts_with("2. second: exec"), "{text}");
        let run = app.wait_run(id, &["pending_approval"]).await;
        assert_eq!(run["gate"], 1, "{run:#}");
        assert_eq!(app.marks(), 1, "the first step ran");

        // The first request's button is for the gate the run left: refused, whoever presses.
        let v = app.press(SECURITY, &channel, &first_id, &approve0).await;
        assert_refused(&v, "earlier step");
        let v = app
            .press(SECURITY, &channel, &first_id, &format!("run:{id}:g0:deny"))
            .await;
        assert_refused(&v, "earlier step");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.marks(), 1);
        assert_eq!(app.run(id).await["state"], "pending_approval");

        // Somebody Spotter does not know, holding the Discord role mapped to approver, may
        // approve the second step; they are recorded by their Discord id.
        let second_id = second["id"].as_str().unwrap();
        let approve1 = format!("run:{id}:g1:approve");
        let v = app.press(STRANGER, &channel, second_id, &approve1).await;
        assert_refused(&v, "needs role approver");
        let v = app
            .press_with_roles(STRANGER, &[APPROVER_ROLE], &channel, second_id, &approve1)
            .await;
        assert!(content(&v).contains("approved by"), "{v}");
        let run = app
            .wait_run(id, &["succeeded", "failed", "timed_out"])
            .await;
        assert_eq!(run["state"], "succeeded", "{run:#}");
        assert_eq!(app.marks(), 2, "each step ran once");
        let deciders: Vec<(u64, &str)> = run["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["gate"].as_u64().unwrap(), a["person"].as_str().unwrap()))
            .collect();
        let stranger = format!("discord:{STRANGER}");
        assert_eq!(deciders, [(0, "dba"), (1, stranger.as_str())]);
    }
);
