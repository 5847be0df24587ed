"""Every alarm of template.yaml can reach the trader: its topic is not encrypted with an AWS-managed key.

SNS's AWS-managed key (alias/aws/sns) has a key policy nobody can edit, and it does not let CloudWatch alarms
use it: an alarm whose topic uses it fails its action, which only the alarm's history shows ("CloudWatch Alarms
does not have authorization to access the SNS topic encryption key", AWS re:Post knowledge center,
cloudwatch-configure-alarm-sns). The topic was encrypted that way until the chat-channel work noticed it.
"""

from __future__ import annotations

from typing import Any

from crypto_bot_tools.local.template import load_template
from tests.conftest import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")


def _topic(action: Any) -> str:
    assert isinstance(action, dict), f"an alarm action that is not a Ref to the template's topic: {action!r}"
    assert set(action) == {"Ref"}, action
    return str(action["Ref"])


def test_every_alarm_notifies_a_topic_of_the_template_that_alarms_may_publish_to() -> None:
    resources = TEMPLATE["Resources"]
    alarms = {k: r for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert len(alarms) >= 7
    for name, alarm in alarms.items():
        actions = alarm["Properties"].get("AlarmActions") or []
        assert actions, f"{name} notifies nobody"
        for action in actions:
            topic = resources[_topic(action)]
            assert topic["Type"] == "AWS::SNS::Topic"
            key = (topic.get("Properties") or {}).get("KmsMasterKeyId")
            assert not (isinstance(key, str) and key.startswith("alias/aws/")), (
                f"{name}: its topic {_topic(action)} is encrypted with the AWS-managed key {key}, which alarms "
                "may not use"
            )
